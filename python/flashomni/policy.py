"""FlashOmni Python layer: the symbol policy (run_policy) and the Taylor forecast (forecast).

run_policy chooses one layer's Symbols at an update step from its Q and K (policy.h has the exact
rules); forecast extrapolates a cached value (the GEMM-O cache or an attention output) from the
values recorded at the last update steps. Both call the C API of the same name: host arrays run
the CPU oracle, CUDA tensors the GPU kernels on the current torch stream (no host sync apart
from reading varlen offsets to size the symbols).

    s = fo.run_policy(q, k, text=(0, 512), step=20, num_steps=50)   # FLUX: text first
    print(s.density()["query"]["overall"])
    c = fo.forecast([c7, c12, c17], steps=[7, 12, 17], target_step=19)
"""

import ctypes

import numpy as np

from . import _arrays, _lib
from .ops import _bf16, _run, _stream_handle
from .symbols import Symbols

_QUERY_SCORES = {"text_image": 0, "output_change": 1}  # fo_query_score


def _text_array(text, batch):
    """int32 [R, 2] ranges from None, (begin, end), a list of them, or an array (kept as is)."""
    if text is None:
        return None
    if isinstance(text, (tuple, list)):
        arr = np.asarray(text, dtype=np.int64)
        if arr.shape == (2,):
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] not in (1, batch):
            raise ValueError(f"argument 'text': expected (begin, end) or 1 or {batch} such "
                             f"pairs, got {text!r}")
        return np.ascontiguousarray(arr.astype(np.int32))
    return text


def _words_code(like):
    # torch has no general uint32 arithmetic: GPU / torch words are int32 (the same bits).
    return _lib.INT32 if like.kind == "torch" or like.device == _lib.CUDA else _lib.UINT32


def run_policy(q, k, *, step, num_steps=None, text=None, tau_q=None, tau_kv=None, kv_top_k=None,
               cache_queries=None, skip_kv=None, keep_diagonal=None, keep_text_kv=None,
               skip_kv_for_text=None, weight_by_tokens=None, softmax_scale=None,
               block_q=None, block_kv=None, cu_seqlens_q=None, cu_seqlens_kv=None,
               max_seqlen_q=None, max_seqlen_kv=None, return_densities=False, stream=None,
               dtype=None, query_score=None, out_now=None, out_prev=None):
    """Symbols chosen by the policy from one update step's q and k (spec §5, policy.h).

    q [B, Nq, H, d], k [B, Nkv, Hkv, d] (or varlen [total, H, d] with cu_seqlens_q/kv int32
    [B + 1]); fp32 / fp64 / fp16 / bf16 (dtype='bfloat16' for uint16 NumPy arrays). text: the
    [begin, end) text tokens of every request as (begin, end), one pair per request, or an int32
    [R, 2] array (may live on the GPU). Unset options take the library defaults (PolicyConfig:
    tau_q 0.5, tau_kv 0.15, num_steps 50, blocks 128, ...). return_densities: also return the
    per-(b, h) densities (the dicts of Symbols.densities()) computed with the symbols.

    query_score: "text_image" (default) ranks query blocks for caching by the text<->image pooled
    attention; "output_change" by ||O_now - O_prev|| / (||O_prev|| + 1e-12) per block, from
    out_now / out_prev, this and the previous update's attention outputs (q's layout, any dv and
    storage dtype, q's device). out_now is then required; out_prev=None (the first update) caches
    nothing."""
    bf16 = _bf16(dtype)
    qv, kv = _arrays.view(q, "q", bf16=bf16), _arrays.view(k, "k", bf16=bf16)
    args = _lib.PolicyArgs()
    args.struct_size = ctypes.sizeof(_lib.PolicyArgs)
    _lib.call("flashomni_policy_default_args", ctypes.byref(args))
    args.step = int(step)
    if query_score is not None:
        if query_score not in _QUERY_SCORES:
            raise ValueError(f"argument 'query_score': expected one of {sorted(_QUERY_SCORES)}, "
                             f"got {query_score!r}")
        args.query_score = _QUERY_SCORES[query_score]
    options = dict(num_steps=num_steps, tau_q=tau_q, tau_kv=tau_kv, kv_top_k=kv_top_k,
                   block_q=block_q, block_kv=block_kv, softmax_scale=softmax_scale)
    switches = dict(cache_queries=cache_queries, skip_kv=skip_kv, keep_diagonal=keep_diagonal,
                    keep_text_kv=keep_text_kv, skip_kv_for_text=skip_kv_for_text,
                    weight_by_tokens=weight_by_tokens)
    for name, value in options.items():
        if value is not None:
            setattr(args, name, value)
    for name, value in switches.items():
        if value is not None:
            setattr(args, name, int(bool(value)))

    varlen = cu_seqlens_q is not None or cu_seqlens_kv is not None
    cu_q = _arrays.host_int32(cu_seqlens_q, "cu_seqlens_q", qv)
    cu_kv = _arrays.host_int32(cu_seqlens_kv, "cu_seqlens_kv", qv)
    cqv = _arrays.view(cu_q, "cu_seqlens_q", optional=True)
    ckv = _arrays.view(cu_kv, "cu_seqlens_kv", optional=True)
    host_cu_q = host_cu_kv = None
    if varlen and cu_q is not None and cu_kv is not None:
        host_cu_q = _arrays.to_numpy_host(cu_q, np.int32)
        host_cu_kv = _arrays.to_numpy_host(cu_kv, np.int32)
        if qv.device == _lib.CUDA:  # the GPU sizes the symbols from the maxima
            max_seqlen_q = max_seqlen_q or int(np.max(np.diff(host_cu_q), initial=0))
            max_seqlen_kv = max_seqlen_kv or int(np.max(np.diff(host_cu_kv), initial=0))
    args.max_seqlen_q = int(max_seqlen_q or 0)
    args.max_seqlen_kv = int(max_seqlen_kv or 0)
    batch = (qv.shape[0] if not varlen else
             (host_cu_q.size - 1 if host_cu_q is not None else 1))
    tv = _arrays.view(_text_array(text, batch), "text", optional=True)
    args.q, args.k = qv.c(), kv.c()
    args.cu_seqlens_q, args.cu_seqlens_kv = _arrays.c_tensor(cqv), _arrays.c_tensor(ckv)
    args.text = _arrays.c_tensor(tv)
    nv = _arrays.view(out_now, "out_now", optional=True, bf16=bf16)
    pv = _arrays.view(out_prev, "out_prev", optional=True, bf16=bf16)
    args.out_now, args.out_prev = _arrays.c_tensor(nv), _arrays.c_tensor(pv)

    shape = _lib.SymbolsStruct()
    _lib.call("flashomni_policy_symbols_shape", ctypes.byref(args), ctypes.byref(shape))
    q_words = (shape.q_blocks + 31) // 32
    kv_words = (shape.kv_blocks + 31) // 32
    code = _words_code(qv)
    q_bits = _arrays.allocate(qv, (shape.batch, shape.heads, q_words), code, zero=False)
    kv_bits = _arrays.allocate(qv, (shape.batch, shape.heads, shape.q_blocks, kv_words), code,
                               zero=False)
    args.q_bits, args.q_words = _arrays.view(q_bits, "q_bits").data, int(np.prod(q_bits.shape))
    args.kv_bits = _arrays.view(kv_bits, "kv_bits").data
    args.kv_words = int(np.prod(kv_bits.shape))
    dens = None
    entries = shape.batch * shape.heads
    if return_densities:
        dens = _arrays.allocate(qv, (entries * ctypes.sizeof(_lib.SymbolDensity),), _lib.UINT8,
                                zero=True)
        args.densities, args.densities_count = _arrays.view(dens, "densities").data, entries
    _run("flashomni_run_policy", args, qv, stream)

    if varlen:
        lengths = dict(cu_seqlens_q=host_cu_q, cu_seqlens_kv=host_cu_kv)
    else:
        lengths = dict(seqlen_q=qv.shape[1], seqlen_kv=kv.shape[1])
    symbols = Symbols(q_bits, kv_bits, heads=shape.heads, q_blocks=shape.q_blocks,
                      kv_blocks=shape.kv_blocks, batch=shape.batch, block_q=shape.block_q,
                      block_kv=shape.block_kv, **lengths)
    if not return_densities:
        return symbols
    raw = np.ascontiguousarray(_arrays.to_numpy_host(dens)).tobytes()
    arr = (_lib.SymbolDensity * entries).from_buffer_copy(raw)
    fields = [f for f, _ in _lib.SymbolDensity._fields_]
    return symbols, [{f: getattr(d, f) for f in fields} for d in arr]


def forecast(history, steps, target_step, order=2, *, out=None, stream=None, dtype=None):
    """Taylor forecast at target_step from 1..3 values recorded at `steps` (oldest first):
    the polynomial of degree min(order, len(history) - 1) through the last points (engine.h
    TaylorForecast), as sum_p w_p history_p. Returns out (allocated like history[-1])."""
    bf16 = _bf16(dtype)
    history = list(history)
    steps = [int(s) for s in steps]
    if not 1 <= len(history) <= _lib.MAX_FORECAST_POINTS:
        raise ValueError(f"argument 'history': expected 1 to {_lib.MAX_FORECAST_POINTS} values, "
                         f"got {len(history)}")
    if len(steps) != len(history):
        raise ValueError(f"argument 'steps': expected {len(history)} steps (one per history "
                         f"value), got {len(steps)}")
    views = [_arrays.view(h, f"history[{i}]", bf16=bf16) for i, h in enumerate(history)]
    if out is None:
        out = _arrays.allocate(views[-1], views[-1].shape, views[-1].dtype, zero=False)
    ov = _arrays.view(out, "out", bf16=bf16)
    args = _lib.ForecastArgs()
    args.struct_size = ctypes.sizeof(_lib.ForecastArgs)
    args.order, args.target_step, args.points = int(order), int(target_step), len(history)
    for i, (v, s) in enumerate(zip(views, steps)):
        args.history[i] = v.c()
        args.steps[i] = s
    args.out = ov.c()
    handle = _stream_handle(stream, ov) if ov.device == _lib.CUDA else 0
    _lib.call("flashomni_forecast", ctypes.byref(args), handle or None)
    return out
