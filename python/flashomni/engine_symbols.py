"""Symbols the engine derives from the chosen ones (flashomni.engine): every query block cached
(whole-layer reuse) and the union of the heads' query bits (project_q full_rows)."""

import numpy as np
import torch


def all_cached_like(symbols):
    """Symbols of the same shape with every query block cached (whole-layer reuse)."""
    def zeros(words):
        return (torch.zeros_like(words) if isinstance(words, torch.Tensor) else
                torch.zeros(tuple(words.shape), dtype=torch.int32))
    return symbols._like(zeros(symbols.q_bits), zeros(symbols.kv_bits))


def heads_union(symbols):
    """Symbols whose query bits are, in every head, the OR of all heads' bits (the same key
    bits): what GEMM-Q computes for a caller that mixes a token's heads (project_q full_rows)."""
    q = symbols.q_bits
    if isinstance(q, np.ndarray):
        union = np.bitwise_or.reduce(q, axis=1, keepdims=True)
        return symbols._like(np.ascontiguousarray(np.broadcast_to(union, q.shape)),
                             symbols.kv_bits)
    q = torch.as_tensor(q)
    union = q[:, :1].clone()
    for h in range(1, q.shape[1]):
        union |= q[:, h:h + 1]
    return symbols._like(union.expand_as(q).contiguous(), symbols.kv_bits)
