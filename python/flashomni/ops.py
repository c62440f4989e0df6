"""FlashOmni Python layer: the operations (sparse_attention, gemm_q, gemm_o_update/dispatch).

Each function builds the C argument struct from duck-typed arrays, allocates missing outputs
(NumPy for host NumPy inputs, torch for torch inputs), and for CUDA inputs a torch workspace and
the current torch stream, then calls the C API of the same name. Errors: ValueError
(invalid argument, message names it), NotImplementedError (unsupported), RuntimeError (other).
"""

import ctypes
import math

import numpy as np

from . import _arrays, _lib
from .symbols import Symbols


def _bf16(dtype):
    code = _arrays.dtype_code(dtype)
    if code not in (None, _lib.BFLOAT16):
        raise ValueError("argument 'dtype': only 'bfloat16' (for uint16 NumPy arrays) is "
                         f"accepted, got {dtype!r}")
    return code == _lib.BFLOAT16


def _symbols_arg(symbols):
    if symbols is None:
        return None, None
    if not isinstance(symbols, Symbols):
        raise TypeError(f"argument 'symbols': expected flashomni.Symbols or None, got "
                        f"{type(symbols).__name__}")
    s = symbols.c()
    return s, ctypes.pointer(s)


_raw_stream = None  # torch's current cudaStream_t of a device index, as an int


def _current_raw_stream(index):
    global _raw_stream
    if _raw_stream is None:
        import torch

        # The C getter torch's own compiled code uses: torch.cuda.current_stream(device) builds
        # a Stream object (~8 us of host time per op call on the lent H100's CPU,
        # bench/host_overhead.py).
        fast = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        _raw_stream = fast or (lambda i: torch.cuda.current_stream(i).cuda_stream)
    return _raw_stream(index)


def _stream_handle(stream, like):
    """cudaStream_t as an int: explicit int / object with .cuda_stream, else torch's current."""
    if stream is not None:
        return int(getattr(stream, "cuda_stream", stream))
    if like.kind == "torch":
        return _current_raw_stream(like.device_index)
    return 0


class GemmPlan:
    """A GEMM work list planned once (gemm_q_plan, gemm_o_update_plan, gemm_o_dispatch_plan) for
    calls of the same operation, given plan=, to run without planning again: on CUDA the planner
    kernel (~6 us on the H100, which the GEMM waits for) then runs once per plan, not per call.

    It owns the workspace holding the list. Valid while the call's arguments match the plan's
    (checked: ValueError naming 'plan') and the symbols' bits stay the same (not checked: the
    call cannot see them, so rewriting the symbols in place needs a new plan). The CPU backend
    has no list: its plan only records the operation."""

    def __init__(self, op, c_plan, workspace, nbytes, handle):
        self.op, self._c, self._workspace, self._bytes = op, c_plan, workspace, nbytes
        self._streams = {handle}  # streams its workspace is known to the allocator on

    def __repr__(self):
        return f"GemmPlan({self.op}, workspace {self._bytes} bytes)"


def _workspace(name, args, like):
    bytes_ = ctypes.c_size_t(0)
    ws_name = {"flashomni_gemm_o_update": "flashomni_gemm_o_workspace_size",
               "flashomni_gemm_o_dispatch": "flashomni_gemm_o_workspace_size",
               "flashomni_run_policy": "flashomni_policy_workspace_size"}.get(
                   name, name + "_workspace_size")
    _lib.call(ws_name, ctypes.byref(args), ctypes.byref(bytes_))
    workspace, ptr = None, None
    if bytes_.value:
        workspace = _arrays.allocate(like, (bytes_.value,), _lib.UINT8, zero=False)
        ptr = _arrays.view(workspace, "workspace").data
    return workspace, ptr, bytes_.value


def _record_stream(workspace, handle):
    """The caching allocator orders a block's reuse on its allocating stream only; tell it about
    the stream `handle` (0: the legacy default stream) too."""
    if workspace is not None and _arrays.is_torch(workspace):
        import torch

        workspace.record_stream(torch.cuda.ExternalStream(handle) if handle else
                                torch.cuda.default_stream(workspace.device))


def _run(name, args, like, stream, plan=None):
    """Queries the workspace, allocates it (torch, on like's GPU) and calls `name`; with a plan,
    runs on the plan's workspace and list instead."""
    if plan is not None:
        if not isinstance(plan, GemmPlan):
            raise TypeError(f"argument 'plan': expected flashomni.GemmPlan or None, got "
                            f"{type(plan).__name__}")
        if plan.op != name[len("flashomni_"):]:
            raise ValueError(f"argument 'plan': made for {plan.op}, not "
                             f"{name[len('flashomni_'):]}")
        args.plan = ctypes.pointer(plan._c)
        workspace, nbytes = plan._workspace, plan._bytes
        ptr = _arrays.view(workspace, "workspace").data if workspace is not None else None
    else:
        workspace, ptr, nbytes = _workspace(name, args, like)
    handle = _stream_handle(stream, like) if like.device == _lib.CUDA else 0
    _lib.call(name, ctypes.byref(args), ptr, nbytes, handle or None)
    if plan is None:
        if stream is not None:
            _record_stream(workspace, handle)
    elif handle not in plan._streams:
        # A plan's workspace outlives this call: its reuse must wait for this stream's work too,
        # whichever stream this is.
        _record_stream(workspace, handle)
        plan._streams.add(handle)


def _plan(name, args, like, stream):
    """Allocates a workspace and calls name + '_plan' into it; returns the GemmPlan."""
    workspace, ptr, nbytes = _workspace(name, args, like)
    handle = _stream_handle(stream, like) if like.device == _lib.CUDA else 0
    c_plan = _lib.GemmPlanStruct()
    _lib.call(name + "_plan", ctypes.byref(args), ptr, nbytes, handle or None,
              ctypes.byref(c_plan))
    if stream is not None:
        _record_stream(workspace, handle)
    return GemmPlan(name[len("flashomni_"):], c_plan, workspace, nbytes, handle)


def sparse_attention(q, k, v, symbols=None, *, softmax_scale=None, out=None, lse=None,
                     return_lse=False, cu_seqlens_q=None, cu_seqlens_kv=None, max_seqlen_q=None,
                     max_seqlen_kv=None, stream=None, dtype=None):
    """Block-sparse attention (spec §2); returns out, or (out, lse) with return_lse.

    Uniform batch: q [B, Nq, H, d], k/v [B, Nkv, Hkv, d], lse float32 [B, H, Nq].
    Varlen: q [total_q, H, d], k/v [total_kv, Hkv, d], lse [H, total_q] with cu_seqlens_q/kv
    (int32 [B + 1], on the tensors' device; lists are accepted). Cached (b, h, i) rows of out and
    lse are not written: pass `out` pre-filled with cached values; when allocated here they are 0.
    dtype='bfloat16' marks uint16 NumPy arrays as bfloat16 bits."""
    bf16 = _bf16(dtype)
    qv = _arrays.view(q, "q", bf16=bf16)
    kv_, vv = _arrays.view(k, "k", bf16=bf16), _arrays.view(v, "v", bf16=bf16)
    varlen = cu_seqlens_q is not None or cu_seqlens_kv is not None
    cu_q = _arrays.host_int32(cu_seqlens_q, "cu_seqlens_q", qv)
    cu_kv = _arrays.host_int32(cu_seqlens_kv, "cu_seqlens_kv", qv)
    cqv = _arrays.view(cu_q, "cu_seqlens_q", optional=True)
    ckv = _arrays.view(cu_kv, "cu_seqlens_kv", optional=True)
    if varlen:
        if max_seqlen_q is None and cu_q is not None:
            max_seqlen_q = int(np.max(np.diff(_arrays.to_numpy_host(cu_q)), initial=0))
        if max_seqlen_kv is None and cu_kv is not None:
            max_seqlen_kv = int(np.max(np.diff(_arrays.to_numpy_host(cu_kv)), initial=0))
    if out is None:
        out = _arrays.allocate(qv, qv.shape, qv.dtype, zero=symbols is not None)
    ov = _arrays.view(out, "out", bf16=bf16)
    if lse is None and return_lse:
        if varlen and qv.ndim == 3:
            lse_shape = (qv.shape[1], qv.shape[0])
        elif qv.ndim == 4:
            lse_shape = (qv.shape[0], qv.shape[2], qv.shape[1])
        else:
            raise ValueError(f"argument 'q': expected 4 dims [B, Nq, H, d] (or 3 with cu_seqlens), "
                             f"got {qv.ndim}")
        lse = _arrays.allocate(qv, lse_shape, _lib.FLOAT32, zero=symbols is not None)
    lv = _arrays.view(lse, "lse", optional=True)
    sym, sym_ptr = _symbols_arg(symbols)

    args = _lib.AttentionArgs()
    args.struct_size = ctypes.sizeof(_lib.AttentionArgs)
    args.max_seqlen_q = int(max_seqlen_q or 0)
    args.max_seqlen_kv = int(max_seqlen_kv or 0)
    if softmax_scale is not None and not (math.isfinite(softmax_scale) and softmax_scale > 0):
        raise ValueError(f"argument 'softmax_scale': expected a finite value > 0, got "
                         f"{softmax_scale}")
    args.softmax_scale = float(softmax_scale or 0.0)
    args.q, args.k, args.v, args.out = qv.c(), kv_.c(), vv.c(), ov.c()
    args.lse = _arrays.c_tensor(lv)
    args.cu_seqlens_q, args.cu_seqlens_kv = _arrays.c_tensor(cqv), _arrays.c_tensor(ckv)
    if sym_ptr is not None:
        args.symbols = sym_ptr
    _run("flashomni_sparse_attention", args, qv, stream)
    del sym
    return (out, lse) if return_lse else out


def _head_dim(head_dim, columns, heads, name):
    if not isinstance(heads, int) or heads <= 0:
        raise ValueError(f"argument 'heads': expected an int > 0, got {heads!r}")
    if head_dim is None:
        if columns % heads:
            raise ValueError(f"argument 'heads': {name} has {columns} columns, not a multiple of "
                             f"heads = {heads}; pass head_dim")
        return columns // heads
    return int(head_dim)


def _out_shape(inp, weight, name):
    if inp.ndim not in (2, 3):
        raise ValueError(f"argument '{name}': expected 2 or 3 dims, got {inp.ndim}")
    if weight.ndim != 2:
        raise ValueError(f"argument 'weight': expected 2 dims, got {weight.ndim}")
    return inp.shape[:-1] + (weight.shape[0],)


def gemm_q(x, weight, bias=None, *, heads, symbols=None, row_offset=0, out=None, head_dim=None,
           stream=None, dtype=None, plan=None):
    """Q = x weight^T + bias for active (query block, head) tiles only (spec §3).

    x [M, K] or [B, M, K]; weight [heads * head_dim, K]; out [..., heads * head_dim]. Row m is
    token m + row_offset of the symbols' sequence. Inactive tiles of out are not written (0 when
    `out` is allocated here). plan: a gemm_q_plan of these arguments (GemmPlan)."""
    return _gemm_q(x, weight, bias, heads, symbols, row_offset, out, head_dim, stream, dtype,
                   plan, False)


def gemm_q_plan(x, weight, bias=None, *, heads, symbols=None, row_offset=0, out=None,
                head_dim=None, stream=None, dtype=None):
    """Plans gemm_q's work list for these arguments once (GemmPlan): gemm_q(..., plan=) then
    runs the GEMM alone. Reads only shapes and the symbols (x, weight and out are not read)."""
    return _gemm_q(x, weight, bias, heads, symbols, row_offset, out, head_dim, stream, dtype,
                   None, True)


def _gemm_q(x, weight, bias, heads, symbols, row_offset, out, head_dim, stream, dtype, plan,
            make_plan):
    bf16 = _bf16(dtype)
    xv, wv = _arrays.view(x, "x", bf16=bf16), _arrays.view(weight, "weight", bf16=bf16)
    bv = _arrays.view(bias, "bias", bf16=bf16, optional=True)
    hd = _head_dim(head_dim, wv.shape[0] if wv.ndim == 2 else 0, heads, "weight")
    if out is None:
        zero = symbols is not None and not make_plan
        out = _arrays.allocate(xv, _out_shape(xv, wv, "x"), xv.dtype, zero=zero)
    ov = _arrays.view(out, "out", bf16=bf16)
    sym, sym_ptr = _symbols_arg(symbols)
    args = _lib.GemmQArgs()
    args.struct_size = ctypes.sizeof(_lib.GemmQArgs)
    args.heads, args.head_dim, args.row_offset = heads, hd, int(row_offset)
    args.x, args.weight, args.bias, args.out = xv.c(), wv.c(), _arrays.c_tensor(bv), ov.c()
    if sym_ptr is not None:
        args.symbols = sym_ptr
    if make_plan:
        made = _plan("flashomni_gemm_q", args, xv, stream)
        del sym
        return made
    _run("flashomni_gemm_q", args, xv, stream, plan)
    del sym
    return out


def _gemm_o_args(av, wv, bv, cv, ov, heads, hd, row_offset, sym_ptr):
    args = _lib.GemmOArgs()
    args.struct_size = ctypes.sizeof(_lib.GemmOArgs)
    args.heads, args.head_dim, args.row_offset = heads, hd, int(row_offset)
    args.a, args.weight, args.bias = av.c(), wv.c(), _arrays.c_tensor(bv)
    args.cache, args.out = cv.c(), _arrays.c_tensor(ov)
    if sym_ptr is not None:
        args.symbols = sym_ptr
    return args


def gemm_o_update(a, weight, bias=None, *, heads, symbols=None, row_offset=0, cache_dtype=None,
                  head_dim=None, out=None, cache=None, cache_only=False, stream=None, dtype=None,
                  plan=None):
    """Full-step output projection (spec §4): returns (out, cache) computed in one pass, with
    cache = bias + cached heads' contribution and out = cache + active heads + extra columns.

    a [M, heads * head_dim + extra] or [B, M, ...] (pass head_dim when extra > 0); weight
    [N, heads * head_dim + extra]; cache_dtype defaults to float32 (exact up to summation order).
    cache_only=True: computes and writes the cache alone (no out: returns (None, cache); the
    active heads' and extra columns of `a` are not read), the same cache as a full update.
    plan: a gemm_o_update_plan of these arguments (GemmPlan)."""
    return _gemm_o_update(a, weight, bias, heads, symbols, row_offset, cache_dtype, head_dim, out,
                          cache, cache_only, stream, dtype, plan, False)


def gemm_o_update_plan(a, weight, bias=None, *, heads, symbols=None, row_offset=0,
                       cache_dtype=None, head_dim=None, out=None, cache=None, cache_only=False,
                       stream=None, dtype=None):
    """Plans gemm_o_update's work list for these arguments once (GemmPlan); see gemm_q_plan."""
    return _gemm_o_update(a, weight, bias, heads, symbols, row_offset, cache_dtype, head_dim, out,
                          cache, cache_only, stream, dtype, None, True)


def _gemm_o_update(a, weight, bias, heads, symbols, row_offset, cache_dtype, head_dim, out, cache,
                   cache_only, stream, dtype, plan, make_plan):
    bf16 = _bf16(dtype)
    av, wv = _arrays.view(a, "a", bf16=bf16), _arrays.view(weight, "weight", bf16=bf16)
    bv = _arrays.view(bias, "bias", bf16=bf16, optional=True)
    hd = _head_dim(head_dim, av.shape[-1] if av.ndim else 0, heads, "a")
    shape = _out_shape(av, wv, "a")
    if cache_only and out is not None:
        raise ValueError("argument 'out': must be None with cache_only=True (only the cache is "
                         "computed)")
    if out is None and not cache_only:
        out = _arrays.allocate(av, shape, av.dtype, zero=False)
    if cache is None:
        code = _lib.FLOAT32 if cache_dtype is None else _arrays.dtype_code(cache_dtype)
        cache = _arrays.allocate(av, shape, code, zero=False)
    cache_bf16 = bf16 or _arrays.dtype_code(cache_dtype) == _lib.BFLOAT16
    ov = _arrays.view(out, "out", bf16=bf16, optional=True)
    cv = _arrays.view(cache, "cache", bf16=cache_bf16)
    sym, sym_ptr = _symbols_arg(symbols)
    args = _gemm_o_args(av, wv, bv, cv, ov, heads, hd, row_offset, sym_ptr)
    if make_plan:
        made = _plan("flashomni_gemm_o_update", args, av, stream)
        del sym
        return made
    _run("flashomni_gemm_o_update", args, av, stream, plan)
    del sym
    return out, cache


def gemm_o_dispatch(a, weight, cache, *, heads, symbols=None, row_offset=0, out=None,
                    head_dim=None, stream=None, dtype=None, cache_dtype=None, plan=None):
    """Sparse-step output projection (spec §4): out = cache + active heads + extra columns.
    Cached heads' columns of `a` are never read. plan: a gemm_o_dispatch_plan of these
    arguments (GemmPlan), for the sparse steps between two full steps."""
    return _gemm_o_dispatch(a, weight, cache, heads, symbols, row_offset, out, head_dim, stream,
                            dtype, cache_dtype, plan, False)


def gemm_o_dispatch_plan(a, weight, cache, *, heads, symbols=None, row_offset=0, out=None,
                         head_dim=None, stream=None, dtype=None, cache_dtype=None):
    """Plans gemm_o_dispatch's work list for these arguments once (GemmPlan); see gemm_q_plan."""
    return _gemm_o_dispatch(a, weight, cache, heads, symbols, row_offset, out, head_dim, stream,
                            dtype, cache_dtype, None, True)


def _gemm_o_dispatch(a, weight, cache, heads, symbols, row_offset, out, head_dim, stream, dtype,
                     cache_dtype, plan, make_plan):
    bf16 = _bf16(dtype)
    av, wv = _arrays.view(a, "a", bf16=bf16), _arrays.view(weight, "weight", bf16=bf16)
    cache_bf16 = bf16 or _arrays.dtype_code(cache_dtype) == _lib.BFLOAT16
    cv = _arrays.view(cache, "cache", bf16=cache_bf16)
    hd = _head_dim(head_dim, av.shape[-1] if av.ndim else 0, heads, "a")
    if out is None:
        out = _arrays.allocate(av, _out_shape(av, wv, "a"), av.dtype, zero=False)
    ov = _arrays.view(out, "out", bf16=bf16)
    sym, sym_ptr = _symbols_arg(symbols)
    args = _gemm_o_args(av, wv, None, cv, ov, heads, hd, row_offset, sym_ptr)
    if make_plan:
        made = _plan("flashomni_gemm_o_dispatch", args, av, stream)
        del sym
        return made
    _run("flashomni_gemm_o_dispatch", args, av, stream, plan)
    del sym
    return out
