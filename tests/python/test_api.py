"""FlashOmni Python tests: the binding itself — errors become ValueError naming the argument (from
the C messages), status mapping, the C API's struct/NULL guards and thread-local message, and the
array protocols (DLPack, torch-like duck typing, __cuda_array_interface__)."""

import ctypes
import threading

import numpy as np
import pytest

import flashomni as fo
from flashomni import _lib


def _qkv(seed=0, n=32, heads=2, d=16, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((1, n, heads, d)).astype(dtype) for _ in range(3))


def test_library_info():
    assert fo.version() == fo.__version__
    assert isinstance(fo.has_cuda(), bool)
    assert _lib.lib().flashomni_abi_version() == 4
    assert fo.library_path().endswith("libflashomni.so")


@pytest.mark.parametrize(
    "mutate,name",
    [
        (lambda a: a.update(k=a["k"].astype(np.float64)), "'k'"),
        (lambda a: a.update(q=a["q"][0, 0]), "'q'"),
        (lambda a: a.update(v=a["v"][:, :16]), "'v'"),
        (lambda a: a.update(out=np.zeros((1, 32, 2, 8), np.float32)), "'out'"),
        (lambda a: a.update(lse=np.zeros((1, 2, 32), np.float64)), "'lse'"),
        (lambda a: a.update(lse=np.zeros((1, 32, 2), np.float32)), "'lse'"),
        (lambda a: a.update(k=np.zeros((1, 32, 3, 16), np.float32)), "'k'"),
        (lambda a: a.update(q=a["q"].astype(np.int32), k=a["k"].astype(np.int32),
                            v=a["v"].astype(np.int32)), "'q'"),
        (lambda a: a.update(symbols=fo.Symbols.dense(2, 64, 32, block_q=16, block_kv=16)),
         "'symbols"),
        (lambda a: a.update(symbols=fo.Symbols.dense(3, 32, 32, block_q=16, block_kv=16)),
         "'symbols"),
        (lambda a: a.update(softmax_scale=-1.0), "'softmax_scale'"),
        (lambda a: a.update(q=a["q"].astype(np.uint16)), "'q'"),
        (lambda a: a.update(q=a["q"][None]), "'q'"),
        (lambda a: a.update(q=a["q"].astype(">f4")), "'q'"),
        (lambda a: a.update(cu_seqlens_q=[0, 32], cu_seqlens_kv=[0, 32]), "'cu_seqlens_q'"),
    ],
)
def test_attention_errors_are_value_errors_naming_the_argument(mutate, name):
    q, k, v = _qkv()
    args = dict(q=q, k=k, v=v)
    mutate(args)
    with pytest.raises(ValueError) as info:
        fo.sparse_attention(**args)
    assert name in str(info.value)


def test_varlen_max_seqlen_must_be_the_longest_request():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((48, 2, 16)).astype(np.float32)
    cu = np.array([0, 16, 48], np.int32)
    fo.sparse_attention(q, q, q, cu_seqlens_q=cu, cu_seqlens_kv=cu)
    with pytest.raises(ValueError, match="max_seqlen_q"):
        fo.sparse_attention(q, q, q, cu_seqlens_q=cu, cu_seqlens_kv=cu, max_seqlen_q=16)
    with pytest.raises(ValueError, match="cu_seqlens_q"):
        fo.sparse_attention(q, q, q, cu_seqlens_q=np.array([0, 16, 8], np.int32), cu_seqlens_kv=cu)


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda x, w: fo.gemm_q(x, w, heads=3), "'heads'"),
        (lambda x, w: fo.gemm_q(x, w[:, :8], heads=2), "'weight'"),
        (lambda x, w: fo.gemm_q(x, w, np.zeros(5, np.float32), heads=2), "'bias'"),
        (lambda x, w: fo.gemm_q(x, w, heads=2, out=np.zeros((20, 32), np.float64)), "'out'"),
        (lambda x, w: fo.gemm_q(x, w, heads=2, row_offset=-1,
                                symbols=fo.Symbols.dense(2, 32, 16, block_q=16, block_kv=16)),
         "'row_offset'"),
        (lambda x, w: fo.gemm_q(x, w, heads=2,
                                symbols=fo.Symbols.dense(2, 16, 16, block_q=16, block_kv=16)),
         "'symbols"),
        (lambda x, w: fo.gemm_o_update(x, w[:8], heads=2, cache_dtype="uint8"), "'cache'"),
        (lambda x, w: fo.gemm_o_dispatch(x, w[:8], np.zeros((20, 8), np.float32), heads=4,
                                         head_dim=8), "'a'"),
        (lambda x, w: fo.gemm_o_dispatch(x, w[:8], np.zeros((20, 9), np.float32), heads=2),
         "'cache'"),
        (lambda x, w: fo.gemm_q(x, w, heads=2, dtype="float16"), "'dtype'"),
    ],
)
def test_gemm_errors_are_value_errors_naming_the_argument(call, name):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 16)).astype(np.float32)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    with pytest.raises(ValueError) as info:
        call(x, w)
    assert name in str(info.value)


def test_status_codes_map_to_python_exceptions():
    _lib.check(_lib.OK)
    for status, exc in [(_lib.INVALID_ARGUMENT, ValueError),
                        (_lib.UNSUPPORTED, NotImplementedError), (_lib.CUDA_ERROR, RuntimeError),
                        (_lib.INTERNAL, RuntimeError)]:
        with pytest.raises(exc):
            _lib.check(status)


def test_c_api_guards_struct_size_and_null_pointers():
    L = _lib.lib()
    args = _lib.AttentionArgs()
    assert L.flashomni_sparse_attention(ctypes.byref(args), None, 0, None) == _lib.INVALID_ARGUMENT
    assert "args.struct_size" in _lib.last_error()
    args.struct_size = ctypes.sizeof(args) + 8  # a newer header than the library
    assert L.flashomni_sparse_attention(ctypes.byref(args), None, 0, None) == _lib.INVALID_ARGUMENT
    assert L.flashomni_gemm_q(None, None, 0, None) == _lib.INVALID_ARGUMENT
    assert "'args'" in _lib.last_error()
    args.struct_size = ctypes.sizeof(args)
    assert L.flashomni_sparse_attention_workspace_size(ctypes.byref(args), None) != _lib.OK
    assert "'bytes'" in _lib.last_error()
    size = ctypes.c_size_t(123)
    assert L.flashomni_sparse_attention_workspace_size(ctypes.byref(args), ctypes.byref(size)) == 0
    assert size.value == 0  # CPU needs no workspace
    bad = _lib.Tensor()
    bad.data, bad.dtype, bad.ndim = 1, 42, 1
    args.q = bad
    assert L.flashomni_sparse_attention(ctypes.byref(args), None, 0, None) == _lib.INVALID_ARGUMENT
    assert "q.dtype" in _lib.last_error()
    assert L.flashomni_symbols_validate(None, None, 1) == _lib.INVALID_ARGUMENT


def test_last_error_is_thread_local():
    q, k, v = _qkv()
    with pytest.raises(ValueError):
        fo.sparse_attention(q, k.astype(np.float64), v)
    assert "'k'" in _lib.last_error()
    seen = []
    t = threading.Thread(target=lambda: seen.append(_lib.last_error()))
    t.start()
    t.join()
    assert seen == [""]


def test_unsupported_object_is_a_type_error():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="'k'"):
        fo.sparse_attention(q, object(), v)


class _DLPackOnly:
    """Exposes only the DLPack protocol (the generic path that parses DLManagedTensor)."""

    def __init__(self, arr):
        self._arr = arr

    def __dlpack__(self, stream=None):
        return self._arr.__dlpack__()

    def __dlpack_device__(self):
        return self._arr.__dlpack_device__()


class _TorchLike:
    """Duck-typed like a CPU torch tensor: data_ptr() / stride() in elements / dtype / device."""

    class _Device:
        type, index = "cpu", None

    def __init__(self, arr):
        self._arr = arr
        self.dtype = "torch." + arr.dtype.name
        self.shape = arr.shape
        self.device = self._Device()

    def data_ptr(self):
        return self._arr.ctypes.data

    def stride(self):
        return tuple(s // self._arr.itemsize for s in self._arr.strides)


class _CudaArray:
    """A __cuda_array_interface__ object (never dereferenced: only used to trip device checks)."""

    def __init__(self, shape, typestr="<f4"):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (4096, False),
                                         "strides": None, "version": 3}


def test_dlpack_and_torch_like_inputs_match_numpy():
    q, k, v = _qkv(3)
    ref = fo.sparse_attention(q, k, v)
    np.testing.assert_array_equal(
        fo.sparse_attention(_DLPackOnly(q), _DLPackOnly(k), _DLPackOnly(v), out=np.empty_like(q)),
        ref)
    out = np.empty_like(q)
    fo.sparse_attention(_TorchLike(q), _TorchLike(k[:, :, :, :]), v, out=_TorchLike(out))
    np.testing.assert_array_equal(out, ref)
    strided = np.ascontiguousarray(np.concatenate([k, k], axis=-1))[..., :16]
    np.testing.assert_array_equal(fo.sparse_attention(q, _DLPackOnly(strided), v), ref)


def test_cuda_array_interface_is_parsed_and_device_checked():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="'k'"):
        fo.sparse_attention(q, _CudaArray(k.shape), v)
    with pytest.raises(ValueError, match="'q'"):
        fo.sparse_attention(_CudaArray(q.shape, "<u2"), _CudaArray(k.shape), _CudaArray(v.shape))
    try:
        import torch  # noqa: F401
    except ImportError:
        # Outputs for non-torch CUDA inputs are allocated with torch; without it they must be given
        # (raised before any C call, so the fake pointer is never used).
        with pytest.raises(ValueError, match="must be passed explicitly"):
            fo.sparse_attention(_CudaArray(q.shape), _CudaArray(k.shape), _CudaArray(v.shape))


C_EXAMPLE = r"""
#include <math.h>
#include <stdio.h>
#include "flashomni/flashomni.h"

static float q[256 * 2 * 64], k[256 * 2 * 64], v[256 * 2 * 64], out[256 * 2 * 64];

int main(void) {
  int i;
  for (i = 0; i < 256 * 2 * 64; ++i) {
    q[i] = (float)sin(0.37 * i);
    k[i] = (float)cos(0.11 * i);
    v[i] = (float)sin(0.05 * i);
    out[i] = 7.25f;
  }
  /* The usage example of flashomni.h, verbatim from here on. */
  uint32_t q_bits[2] = {0x1u, 0x3u};          // [B, H, q_words]: head 0 only block 0 active
  uint32_t kv_bits[4] = {0x3u, 0x3u, 0x3u, 0x3u};  // [B, H, q_blocks, kv_words]
  fo_symbols s = {q_bits, kv_bits, 1, 2, 2, 2, 128, 128, FO_CPU};
  fo_attention_args a = {0};
  a.struct_size = sizeof(a);
  a.q = fo_tensor_contiguous(q, FO_FLOAT32, FO_CPU, 4, (int64_t[]){1, 256, 2, 64});
  a.k = fo_tensor_contiguous(k, FO_FLOAT32, FO_CPU, 4, (int64_t[]){1, 256, 2, 64});
  a.v = fo_tensor_contiguous(v, FO_FLOAT32, FO_CPU, 4, (int64_t[]){1, 256, 2, 64});
  a.out = fo_tensor_contiguous(out, FO_FLOAT32, FO_CPU, 4, (int64_t[]){1, 256, 2, 64});
  a.symbols = &s;                              // NULL = dense attention
  if (flashomni_sparse_attention(&a, NULL, 0, NULL) != FO_OK) {
    fprintf(stderr, "flashomni: %s\n", flashomni_last_error());
    return 1;
  }
  /* token 200 is in query block 1: head 0 cached (untouched), head 1 computed */
  printf("%s %g %d\n", flashomni_version(), out[(200 * 2 + 0) * 64],
         out[(200 * 2 + 1) * 64] != 7.25f);
  a.k.dtype = FO_FLOAT16;
  i = flashomni_sparse_attention(&a, NULL, 0, NULL);
  printf("%d %s\n", i, flashomni_last_error());
  return 0;
}
"""


def test_c_header_example_compiles_as_c99_and_runs(tmp_path):
    import pathlib
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    lib = pathlib.Path(fo.library_path())
    include = pathlib.Path(__file__).resolve().parents[2] / "include"
    src, exe = tmp_path / "example.c", tmp_path / "example"
    src.write_text(C_EXAMPLE)
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-Wno-unused-function", f"-I{include}",
                    str(src), "-o", str(exe), str(lib), f"-Wl,-rpath,{lib.parent}", "-lm"],
                   check=True)
    lines = subprocess.run([str(exe)], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    assert lines[0] == f"{fo.__version__} 7.25 1"
    assert lines[1].startswith("1 argument 'k'")


def test_torch_views_validate_on_the_fast_path():
    """_arrays.view remembers torch tensor types after the first sight (its fast path): the
    later views still carry shape and strides and still reject bad dtypes and ranks."""
    torch = pytest.importorskip("torch")
    from flashomni import _arrays

    t = torch.zeros(2, 3)
    for _ in range(2):  # the second view takes the remembered-type path
        v = _arrays.view(t, "x")
        assert (v.shape, v.strides, v.kind, v.dtype) == ((2, 3), (3, 1), "torch", _lib.FLOAT32)
    p = torch.nn.Parameter(torch.zeros(4, 5)[:, ::2])
    for _ in range(2):
        assert _arrays.view(p, "w").strides == (5, 2)
    for _ in range(2):
        with pytest.raises(ValueError, match="'x'.*unsupported dtype"):
            _arrays.view(torch.zeros(2, dtype=torch.int64), "x")
        with pytest.raises(ValueError, match="'x'.*bfloat16"):
            _arrays.view(torch.zeros(2, dtype=torch.uint16), "x")
        assert _arrays.view(torch.zeros(2, dtype=torch.uint16), "x", bf16=True).dtype == \
            _lib.BFLOAT16
        with pytest.raises(ValueError, match="'x'.*dims"):
            _arrays.view(torch.zeros((1,) * (_lib.MAX_DIMS + 1)), "x")
    # A duck-typed look-alike is not remembered as a torch type.
    _arrays.view(_TorchLike(np.zeros((2, 2), np.float32)), "y")
    assert _TorchLike not in _arrays._TORCH_TENSOR_TYPES
