"""FlashOmni Python tests: float64 NumPy references (spec §2-4) and random symbol masks."""

import numpy as np


def random_masks(rng, batch, heads, q_blocks, kv_blocks, q_valid, kv_valid, p_q=0.7, p_kv=0.6):
    """Random q_mask [B, H, nQ] / kv_mask [B, H, nQ, nK] (bool), zero past each request's own
    block counts q_valid[b] / kv_valid[b]."""
    qm = rng.random((batch, heads, q_blocks)) < p_q
    km = rng.random((batch, heads, q_blocks, kv_blocks)) < p_kv
    for b in range(batch):
        qm[b, :, q_valid[b]:] = False
        km[b, :, q_valid[b]:, :] = False
        km[b, :, :, kv_valid[b]:] = False
    return qm, km


def attention_request(q, k, v, qm, km, block_q, block_kv, scale):
    """One request: q [Nq, H, d], k/v [Nkv, Hkv, d] (float64), masks [H, nQ] / [H, nQ, nK].

    Returns (out [Nq, H, d], lse [H, Nq], computed [H, Nq] bool); rows not computed are NaN."""
    nq, heads, d = q.shape
    nkv, kv_heads, _ = k.shape
    group = heads // kv_heads
    out = np.full((nq, heads, d), np.nan)
    lse = np.full((heads, nq), np.nan)
    computed = np.zeros((heads, nq), dtype=bool)
    key_block = np.arange(nkv) // block_kv
    for h in range(heads):
        kh, vh = k[:, h // group, :], v[:, h // group, :]
        for t in range(nq):
            i = t // block_q
            if not qm[h, i]:
                continue
            computed[h, t] = True
            allowed = km[h, i, key_block]
            if not allowed.any():
                out[t, h, :] = 0.0
                lse[h, t] = -np.inf
                continue
            s = scale * (kh[allowed] @ q[t, h, :])
            m = s.max()
            p = np.exp(s - m)
            out[t, h, :] = (p @ vh[allowed]) / p.sum()
            lse[h, t] = m + np.log(p.sum())
    return out, lse, computed


def gemm_q_reference(x, weight, bias, heads, head_dim, qm_h, block_q, row_offset):
    """x [M, K] float64, qm_h [H, nQ] for one batch entry: (out [M, H*d], written [M, H*d])."""
    m = x.shape[0]
    full = x @ weight.T + (0.0 if bias is None else bias)
    written = np.zeros_like(full, dtype=bool)
    for r in range(m):
        i = (r + row_offset) // block_q
        for h in range(heads):
            if qm_h[h, i]:
                written[r, h * head_dim:(h + 1) * head_dim] = True
    return full, written


def gemm_o_reference(a, weight, bias, heads, head_dim, qm_h, block_q, row_offset):
    """a [M, H*d + extra] float64: (cache, out) per spec §4 for one batch entry."""
    m = a.shape[0]
    hd = heads * head_dim
    cache = np.zeros((m, weight.shape[0])) + (0.0 if bias is None else bias)
    out = a @ weight.T + (0.0 if bias is None else bias)
    for r in range(m):
        i = (r + row_offset) // block_q
        for h in range(heads):
            if not qm_h[h, i]:
                cols = slice(h * head_dim, (h + 1) * head_dim)
                cache[r] += a[r, cols] @ weight[:, cols].T
    assert hd <= a.shape[1]
    return cache, out


def to_bf16_bits(x):
    """float -> bfloat16 bits (uint16), round to nearest even."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16)


def from_bf16_bits(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
