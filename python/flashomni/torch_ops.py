"""FlashOmni Python layer: the operations as PyTorch custom ops (torch.ops.flashomni.*).

Importing this module registers, in namespace "flashomni", one op per operation with its outputs
declared as mutated arguments (cached rows / tiles must keep the caller's values, so the ops write
into caller tensors instead of returning new ones) and a fake (meta) implementation, so the ops
trace under torch.compile and record into CUDA graphs (the CUDA path never synchronises and takes
the current stream). The functions below allocate the outputs and call the ops:

    import flashomni.torch_ops as fot
    out = fot.sparse_attention(q, k, v, symbols)          # symbols: flashomni.Symbols on q's device
    y, cache = fot.gemm_o_update(o, w, b, heads=24, symbols=symbols)

Symbols enter the ops as their two word tensors plus a shape list
[batch, heads, q_blocks, kv_blocks, block_q, block_kv]; NumPy words are wrapped (no copy).
"""

from typing import List, Optional

import numpy as np
import torch

from . import ops
from .symbols import Symbols

_NO_SYMBOLS = [0, 0, 0, 0, 0, 0]


def _symbols_from(q_bits, kv_bits, shape):
    if q_bits is None:
        return None
    batch, heads, q_blocks, kv_blocks, block_q, block_kv = shape
    return Symbols(q_bits, kv_bits, heads=heads, q_blocks=q_blocks, kv_blocks=kv_blocks,
                   batch=batch, block_q=block_q, block_kv=block_kv)


def _symbols_to(symbols):
    """(q_bits, kv_bits, shape) tensors of a Symbols, or (None, None, zeros) for dense."""
    if symbols is None:
        return None, None, list(_NO_SYMBOLS)

    def tensor(words):
        if isinstance(words, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(words).view(np.int32))
        return words

    shape = [symbols.batch, symbols.heads, symbols.q_blocks, symbols.kv_blocks, symbols.block_q,
             symbols.block_kv]
    return tensor(symbols.q_bits), tensor(symbols.kv_bits), shape


# ---- ops ------------------------------------------------------------------------------------
@torch.library.custom_op("flashomni::sparse_attention", mutates_args=("out", "lse"))
def _sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      q_bits: Optional[torch.Tensor], kv_bits: Optional[torch.Tensor],
                      symbol_shape: List[int], out: torch.Tensor, lse: Optional[torch.Tensor],
                      cu_seqlens_q: Optional[torch.Tensor], cu_seqlens_kv: Optional[torch.Tensor],
                      max_seqlen_q: int, max_seqlen_kv: int, softmax_scale: float) -> None:
    ops.sparse_attention(q, k, v, _symbols_from(q_bits, kv_bits, symbol_shape),
                         softmax_scale=softmax_scale or None, out=out, lse=lse,
                         cu_seqlens_q=cu_seqlens_q, cu_seqlens_kv=cu_seqlens_kv,
                         max_seqlen_q=max_seqlen_q or None, max_seqlen_kv=max_seqlen_kv or None)


@_sparse_attention.register_fake
def _(q, k, v, q_bits, kv_bits, symbol_shape, out, lse, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
      max_seqlen_kv, softmax_scale):
    return None


@torch.library.custom_op("flashomni::gemm_q", mutates_args=("out",))
def _gemm_q(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
            q_bits: Optional[torch.Tensor], kv_bits: Optional[torch.Tensor],
            symbol_shape: List[int], heads: int, head_dim: int, row_offset: int,
            out: torch.Tensor) -> None:
    ops.gemm_q(x, weight, bias, heads=heads, head_dim=head_dim, row_offset=row_offset,
               symbols=_symbols_from(q_bits, kv_bits, symbol_shape), out=out)


@_gemm_q.register_fake
def _(x, weight, bias, q_bits, kv_bits, symbol_shape, heads, head_dim, row_offset, out):
    return None


@torch.library.custom_op("flashomni::gemm_o_update", mutates_args=("cache", "out"))
def _gemm_o_update(a: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   q_bits: Optional[torch.Tensor], kv_bits: Optional[torch.Tensor],
                   symbol_shape: List[int], heads: int, head_dim: int, row_offset: int,
                   cache: torch.Tensor, out: Optional[torch.Tensor]) -> None:
    ops.gemm_o_update(a, weight, bias, heads=heads, head_dim=head_dim, row_offset=row_offset,
                      symbols=_symbols_from(q_bits, kv_bits, symbol_shape), cache=cache, out=out,
                      cache_only=out is None)


@_gemm_o_update.register_fake
def _(a, weight, bias, q_bits, kv_bits, symbol_shape, heads, head_dim, row_offset, cache, out):
    return None


@torch.library.custom_op("flashomni::gemm_o_dispatch", mutates_args=("out",))
def _gemm_o_dispatch(a: torch.Tensor, weight: torch.Tensor, cache: torch.Tensor,
                     q_bits: Optional[torch.Tensor], kv_bits: Optional[torch.Tensor],
                     symbol_shape: List[int], heads: int, head_dim: int, row_offset: int,
                     out: torch.Tensor) -> None:
    ops.gemm_o_dispatch(a, weight, cache, heads=heads, head_dim=head_dim, row_offset=row_offset,
                        symbols=_symbols_from(q_bits, kv_bits, symbol_shape), out=out)


@_gemm_o_dispatch.register_fake
def _(a, weight, cache, q_bits, kv_bits, symbol_shape, heads, head_dim, row_offset, out):
    return None


# ---- allocating wrappers (traceable: only torch.empty/zeros and the ops) ----------------------
def _head_dim(head_dim, columns, heads):
    return columns // heads if head_dim is None else int(head_dim)


def sparse_attention(q, k, v, symbols=None, *, softmax_scale=None, out=None, lse=None,
                     return_lse=False, cu_seqlens_q=None, cu_seqlens_kv=None, max_seqlen_q=None,
                     max_seqlen_kv=None):
    """torch.ops.flashomni.sparse_attention with allocated outputs (see flashomni.sparse_attention).
    For varlen under torch.compile pass max_seqlen_q/kv (computing them needs a host sync)."""
    q_bits, kv_bits, shape = _symbols_to(symbols)
    varlen = cu_seqlens_q is not None
    if varlen and max_seqlen_q is None:
        max_seqlen_q = int((cu_seqlens_q[1:] - cu_seqlens_q[:-1]).max())
    if varlen and max_seqlen_kv is None:
        max_seqlen_kv = int((cu_seqlens_kv[1:] - cu_seqlens_kv[:-1]).max())
    if out is None:
        out = torch.zeros_like(q) if symbols is not None else torch.empty_like(q)
    if lse is None and return_lse:
        lse_shape = (q.shape[1], q.shape[0]) if varlen else (q.shape[0], q.shape[2], q.shape[1])
        lse = q.new_zeros(lse_shape, dtype=torch.float32)
    torch.ops.flashomni.sparse_attention(q, k, v, q_bits, kv_bits, shape, out, lse, cu_seqlens_q,
                                         cu_seqlens_kv, int(max_seqlen_q or 0),
                                         int(max_seqlen_kv or 0), float(softmax_scale or 0.0))
    return (out, lse) if return_lse else out


def gemm_q(x, weight, bias=None, *, heads, symbols=None, row_offset=0, out=None, head_dim=None):
    """torch.ops.flashomni.gemm_q with an allocated output (see flashomni.gemm_q)."""
    q_bits, kv_bits, shape = _symbols_to(symbols)
    if out is None:
        alloc = torch.zeros if symbols is not None else torch.empty
        out = alloc(*x.shape[:-1], weight.shape[0], dtype=x.dtype, device=x.device)
    torch.ops.flashomni.gemm_q(x, weight, bias, q_bits, kv_bits, shape, heads,
                               _head_dim(head_dim, weight.shape[0], heads), row_offset, out)
    return out


def gemm_o_update(a, weight, bias=None, *, heads, symbols=None, row_offset=0,
                  cache_dtype=torch.float32, head_dim=None, out=None, cache=None,
                  cache_only=False):
    """torch.ops.flashomni.gemm_o_update with allocated (out, cache); cache_only=True computes
    the cache alone and returns (None, cache) (see flashomni.gemm_o_update)."""
    q_bits, kv_bits, shape = _symbols_to(symbols)
    out_shape = (*a.shape[:-1], weight.shape[0])
    if cache_only and out is not None:
        raise ValueError("argument 'out': must be None with cache_only=True (only the cache is "
                         "computed)")
    if out is None and not cache_only:
        out = torch.empty(out_shape, dtype=a.dtype, device=a.device)
    if cache is None:
        cache = torch.empty(out_shape, dtype=cache_dtype, device=a.device)
    torch.ops.flashomni.gemm_o_update(a, weight, bias, q_bits, kv_bits, shape, heads,
                                      _head_dim(head_dim, a.shape[-1], heads), row_offset, cache,
                                      out)
    return out, cache


def gemm_o_dispatch(a, weight, cache, *, heads, symbols=None, row_offset=0, out=None,
                    head_dim=None):
    """torch.ops.flashomni.gemm_o_dispatch with an allocated output."""
    q_bits, kv_bits, shape = _symbols_to(symbols)
    if out is None:
        out = torch.empty((*a.shape[:-1], weight.shape[0]), dtype=a.dtype, device=a.device)
    torch.ops.flashomni.gemm_o_dispatch(a, weight, cache, q_bits, kv_bits, shape, heads,
                                        _head_dim(head_dim, a.shape[-1], heads), row_offset, out)
    return out
