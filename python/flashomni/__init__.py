"""FlashOmni: sparse attention and projections for Diffusion Transformer inference (Python layer).

A pure-Python (ctypes) binding of libflashomni's C API; works with any Python / PyTorch version.
Arrays may be NumPy arrays, torch tensors, or objects exposing __cuda_array_interface__ or DLPack.

    import flashomni as fo
    s = fo.Symbols.from_masks(q_mask, kv_mask)           # which blocks to compute / keep
    out = fo.sparse_attention(q, k, v, s)                # [B, N, H, d]
    q = fo.gemm_q(x, w_q, b_q, heads=24, symbols=s)      # only active (block, head) tiles
    y, cache = fo.gemm_o_update(o, w_o, b_o, heads=24, symbols=s)   # full step
    y = fo.gemm_o_dispatch(o, w_o, cache, heads=24, symbols=s)      # sparse step
    plan = fo.gemm_q_plan(x, w_q, b_q, heads=24, symbols=s)  # plan once per symbols...
    q = fo.gemm_q(x, w_q, b_q, heads=24, symbols=s, plan=plan)  # ...run many (no planner)
    s = fo.run_policy(q, k, text=(0, 512), step=20, num_steps=50)   # the policy's symbols
    c = fo.forecast([c7, c12, c17], steps=[7, 12, 17], target_step=19)  # Taylor forecast

`import flashomni.torch_ops` (needs torch) registers the same operations as torch custom ops
(torch.ops.flashomni.*) for torch.compile and CUDA graphs.
"""

import importlib

from ._lib import library_candidates
from .ops import (GemmPlan, gemm_o_dispatch, gemm_o_dispatch_plan, gemm_o_update,
                  gemm_o_update_plan, gemm_q, gemm_q_plan, sparse_attention)
from .policy import forecast, run_policy
from .symbols import SeqLens, Symbols

__version__ = "0.1.0"

__all__ = [
    "Symbols",
    "SeqLens",
    "sparse_attention",
    "gemm_q",
    "gemm_o_update",
    "gemm_o_dispatch",
    "GemmPlan",
    "gemm_q_plan",
    "gemm_o_update_plan",
    "gemm_o_dispatch_plan",
    "run_policy",
    "forecast",
    "version",
    "has_cuda",
    "library_path",
    "library_candidates",
]


def version():
    """Version string of the loaded libflashomni."""
    from . import _lib

    return _lib.lib().flashomni_version().decode()


def has_cuda():
    """True when the library was built with CUDA and the current device is a Hopper (sm_90) GPU."""
    from . import _lib

    return bool(_lib.lib().flashomni_has_cuda())


def library_path():
    """Path of the libflashomni.so that is (or would be) loaded."""
    from . import _lib

    return _lib.lib()._name


def __getattr__(name):
    # torch_ops imports torch: only on request, so `import flashomni` never does.
    if name == "torch_ops":
        return importlib.import_module(".torch_ops", __name__)
    raise AttributeError(f"module 'flashomni' has no attribute {name!r}")
