"""FlashOmni GPU tests: the shared module-level guard. `torch, fo = require_cuda()` at the top of a
test module skips the whole module without torch, without a CUDA device, or with a libflashomni
built without the sm_90a kernels (pytest puts this folder on sys.path)."""

import pytest


def require_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU", allow_module_level=True)
    import flashomni as fo

    if not fo.has_cuda():
        pytest.skip("libflashomni has no sm_90a kernels for this GPU", allow_module_level=True)
    return torch, fo
