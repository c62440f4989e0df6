"""FlashOmni Python layer: loads libflashomni.so and declares the C API (flashomni.h) with ctypes.

The library is found, in order, at $FLASHOMNI_LIBRARY, next to this package
(flashomni/libflashomni.so, as a wheel would ship it), or in the repository's build directory
($FLASHOMNI_BUILD_DIR or build/). It is loaded on first use, so `import flashomni` works without it.
"""

import ctypes
import os
import pathlib
import threading

# Same values as fo_dtype / fo_device / fo_status (never renumbered).
FLOAT32, FLOAT16, BFLOAT16, FLOAT64, INT32, UINT32, UINT8 = range(7)
CPU, CUDA = 0, 1
OK, INVALID_ARGUMENT, UNSUPPORTED, CUDA_ERROR, INTERNAL = range(5)

DTYPE_NAMES = {
    FLOAT32: "float32",
    FLOAT16: "float16",
    BFLOAT16: "bfloat16",
    FLOAT64: "float64",
    INT32: "int32",
    UINT32: "uint32",
    UINT8: "uint8",
}
DTYPE_CODES = {name: code for code, name in DTYPE_NAMES.items()}
DTYPE_SIZES = {FLOAT32: 4, FLOAT16: 2, BFLOAT16: 2, FLOAT64: 8, INT32: 4, UINT32: 4, UINT8: 1}
MAX_DIMS = 4


class Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("device", ctypes.c_int32),
        ("ndim", ctypes.c_int32),
        ("shape", ctypes.c_int64 * MAX_DIMS),
        ("strides", ctypes.c_int64 * MAX_DIMS),
    ]


class SymbolsStruct(ctypes.Structure):
    _fields_ = [
        ("q_bits", ctypes.c_void_p),
        ("kv_bits", ctypes.c_void_p),
        ("batch", ctypes.c_int32),
        ("heads", ctypes.c_int32),
        ("q_blocks", ctypes.c_int32),
        ("kv_blocks", ctypes.c_int32),
        ("block_q", ctypes.c_int32),
        ("block_kv", ctypes.c_int32),
        ("device", ctypes.c_int32),
    ]


class SeqLensStruct(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int32),
        ("seqlen_q", ctypes.c_int32),
        ("seqlen_kv", ctypes.c_int32),
        ("cu_seqlens_q", ctypes.c_void_p),
        ("cu_seqlens_kv", ctypes.c_void_p),
    ]


class AttentionArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_int32),
        ("max_seqlen_q", ctypes.c_int32),
        ("max_seqlen_kv", ctypes.c_int32),
        ("softmax_scale", ctypes.c_float),
        ("q", Tensor),
        ("k", Tensor),
        ("v", Tensor),
        ("out", Tensor),
        ("lse", Tensor),
        ("cu_seqlens_q", Tensor),
        ("cu_seqlens_kv", Tensor),
        ("symbols", ctypes.POINTER(SymbolsStruct)),
    ]


class GemmPlanStruct(ctypes.Structure):
    _fields_ = [("opaque", ctypes.c_uint64 * 16)]


class GemmQArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_int32),
        ("heads", ctypes.c_int32),
        ("head_dim", ctypes.c_int32),
        ("row_offset", ctypes.c_int32),
        ("x", Tensor),
        ("weight", Tensor),
        ("bias", Tensor),
        ("out", Tensor),
        ("symbols", ctypes.POINTER(SymbolsStruct)),
        ("plan", ctypes.POINTER(GemmPlanStruct)),
    ]


class GemmOArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_int32),
        ("heads", ctypes.c_int32),
        ("head_dim", ctypes.c_int32),
        ("row_offset", ctypes.c_int32),
        ("a", Tensor),
        ("weight", Tensor),
        ("bias", Tensor),
        ("cache", Tensor),
        ("out", Tensor),
        ("symbols", ctypes.POINTER(SymbolsStruct)),
        ("plan", ctypes.POINTER(GemmPlanStruct)),
    ]


class SymbolDensity(ctypes.Structure):
    _fields_ = [
        ("b", ctypes.c_int32),
        ("h", ctypes.c_int32),
        ("valid_q_blocks", ctypes.c_int32),
        ("valid_kv_blocks", ctypes.c_int32),
        ("active_q_blocks", ctypes.c_int32),
        ("kept_pairs", ctypes.c_int64),
        ("active_q_tokens", ctypes.c_int64),
        ("kept_token_pairs", ctypes.c_int64),
        ("q_tokens", ctypes.c_int64),
        ("kv_tokens", ctypes.c_int64),
        ("query_density", ctypes.c_double),
        ("query_token_density", ctypes.c_double),
        ("kv_density", ctypes.c_double),
        ("pair_density", ctypes.c_double),
        ("token_pair_density", ctypes.c_double),
    ]


class DensityStat(ctypes.Structure):
    _fields_ = [
        ("mean", ctypes.c_double),
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
        ("overall", ctypes.c_double),
        ("count", ctypes.c_int64),
    ]


class DensitySummary(ctypes.Structure):
    _fields_ = [(name, DensityStat)
                for name in ("query", "query_token", "kv", "pair", "token_pair")]


class PolicyArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_int32),
        ("step", ctypes.c_int32),
        ("num_steps", ctypes.c_int32),
        ("block_q", ctypes.c_int32),
        ("block_kv", ctypes.c_int32),
        ("max_seqlen_q", ctypes.c_int32),
        ("max_seqlen_kv", ctypes.c_int32),
        ("kv_top_k", ctypes.c_int32),
        ("tau_q", ctypes.c_double),
        ("tau_kv", ctypes.c_double),
        ("softmax_scale", ctypes.c_float),
        ("cache_queries", ctypes.c_int32),
        ("skip_kv", ctypes.c_int32),
        ("keep_diagonal", ctypes.c_int32),
        ("keep_text_kv", ctypes.c_int32),
        ("skip_kv_for_text", ctypes.c_int32),
        ("weight_by_tokens", ctypes.c_int32),
        ("q", Tensor),
        ("k", Tensor),
        ("cu_seqlens_q", Tensor),
        ("cu_seqlens_kv", Tensor),
        ("text", Tensor),
        ("q_bits", ctypes.c_void_p),
        ("q_words", ctypes.c_size_t),
        ("kv_bits", ctypes.c_void_p),
        ("kv_words", ctypes.c_size_t),
        ("densities", ctypes.c_void_p),
        ("densities_count", ctypes.c_size_t),
        ("query_score", ctypes.c_int32),  # ABI 3
        ("out_now", Tensor),
        ("out_prev", Tensor),
    ]


MAX_FORECAST_POINTS = 3


class ForecastArgs(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_int32),
        ("order", ctypes.c_int32),
        ("target_step", ctypes.c_int32),
        ("points", ctypes.c_int32),
        ("steps", ctypes.c_int32 * MAX_FORECAST_POINTS),
        ("history", Tensor * MAX_FORECAST_POINTS),
        ("out", Tensor),
    ]


_P = ctypes.POINTER
_c_size = ctypes.c_size_t
_vp = ctypes.c_void_p
_i32 = ctypes.c_int32
_TP = _P(Tensor)
_SP = _P(SymbolsStruct)
_LP = _P(SeqLensStruct)

# name -> argtypes; every function returns int (status) unless listed in _OTHER_RESTYPES.
_SIGNATURES = {
    "flashomni_version": [],
    "flashomni_abi_version": [],
    "flashomni_has_cuda": [],
    "flashomni_last_error": [],
    "flashomni_sparse_attention_workspace_size": [_P(AttentionArgs), _P(_c_size)],
    "flashomni_sparse_attention": [_P(AttentionArgs), _vp, _c_size, _vp],
    "flashomni_gemm_q_workspace_size": [_P(GemmQArgs), _P(_c_size)],
    "flashomni_gemm_q": [_P(GemmQArgs), _vp, _c_size, _vp],
    "flashomni_gemm_o_workspace_size": [_P(GemmOArgs), _P(_c_size)],
    "flashomni_gemm_o_update": [_P(GemmOArgs), _vp, _c_size, _vp],
    "flashomni_gemm_o_dispatch": [_P(GemmOArgs), _vp, _c_size, _vp],
    "flashomni_gemm_q_plan": [_P(GemmQArgs), _vp, _c_size, _vp, _P(GemmPlanStruct)],
    "flashomni_gemm_o_update_plan": [_P(GemmOArgs), _vp, _c_size, _vp, _P(GemmPlanStruct)],
    "flashomni_gemm_o_dispatch_plan": [_P(GemmOArgs), _vp, _c_size, _vp, _P(GemmPlanStruct)],
    "flashomni_symbols_shape_for": [_LP, _i32, _i32, _i32, _SP],
    "flashomni_symbols_validate": [_SP, _LP, _i32],
    "flashomni_symbols_dense": [_LP, _i32, _i32, _i32, _vp, _c_size, _vp, _c_size],
    "flashomni_symbols_from_masks": [_TP, _TP, _LP, _i32, _i32, _vp, _c_size, _vp, _c_size],
    "flashomni_symbols_to_masks": [_SP, _LP, _TP, _TP],
    "flashomni_symbols_from_block_lists": [
        _TP, _TP, _TP, _LP, _i32, _i32, _vp, _c_size, _vp, _c_size
    ],
    "flashomni_symbols_to_block_lists": [_SP, _LP, _TP, _TP, _TP],
    "flashomni_symbols_reference_packed_size": [_LP, _i32, _i32, _i32, _P(_c_size), _P(_c_size)],
    "flashomni_symbols_to_reference_packed": [_SP, _LP, _vp, _c_size, _vp, _vp, _c_size, _vp],
    "flashomni_symbols_from_reference_packed": [
        _TP, _TP, _TP, _TP, _LP, _i32, _i32, _i32, _vp, _c_size, _vp, _c_size
    ],
    "flashomni_symbols_densities": [_SP, _LP, _P(SymbolDensity), _c_size],
    "flashomni_symbols_density_summary": [_SP, _LP, _P(DensitySummary)],
    "flashomni_policy_default_args": [_P(PolicyArgs)],
    "flashomni_policy_symbols_shape": [_P(PolicyArgs), _SP],
    "flashomni_policy_workspace_size": [_P(PolicyArgs), _P(_c_size)],
    "flashomni_run_policy": [_P(PolicyArgs), _vp, _c_size, _vp],
    "flashomni_forecast": [_P(ForecastArgs), _vp],
}
_OTHER_RESTYPES = {
    "flashomni_version": ctypes.c_char_p,
    "flashomni_last_error": ctypes.c_char_p,
}

_lock = threading.Lock()
_handle = None


def library_candidates():
    """Paths tried, in order, to find libflashomni.so."""
    env = os.environ.get("FLASHOMNI_LIBRARY")
    if env:
        return [pathlib.Path(env)]
    here = pathlib.Path(__file__).resolve().parent
    repo = here.parent.parent
    found = [here / "libflashomni.so"]
    if (repo / "CMakeLists.txt").is_file():  # running from a source checkout
        found.append(repo / os.environ.get("FLASHOMNI_BUILD_DIR", "build") / "libflashomni.so")
    return found


def lib():
    """The loaded library (loaded and declared once, thread-safely)."""
    global _handle
    if _handle is not None:
        return _handle
    with _lock:
        if _handle is None:
            tried = library_candidates()
            path = next((p for p in tried if p.is_file()), None)
            if path is None:
                raise ImportError(
                    "flashomni: libflashomni.so not found (tried "
                    + ", ".join(str(p) for p in tried)
                    + "); build it with scripts/build.sh or set FLASHOMNI_LIBRARY"
                )
            handle = ctypes.CDLL(str(path))
            for name, argtypes in _SIGNATURES.items():
                fn = getattr(handle, name)
                fn.argtypes = argtypes
                fn.restype = _OTHER_RESTYPES.get(name, ctypes.c_int)
            _handle = handle
    return _handle


def last_error():
    return lib().flashomni_last_error().decode("utf-8", "replace")


def check(status):
    """Raises the Python exception for a nonzero status, with the library's message."""
    if status == OK:
        return
    message = last_error()
    if status == INVALID_ARGUMENT:
        raise ValueError(message)
    if status == UNSUPPORTED:
        raise NotImplementedError(message)
    kind = {CUDA_ERROR: "CUDA error", INTERNAL: "internal error"}.get(status, f"status {status}")
    raise RuntimeError(f"flashomni {kind}: {message}")


def call(name, *args):
    """Calls a status-returning C API function and raises on failure."""
    check(getattr(lib(), name)(*args))
