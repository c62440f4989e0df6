"""FlashOmni GPU tests (pytest + torch): the cache-only gemm_o_update (out not given, gemm.h) on
CUDA tensors — the cache equals the full update's cache and the fp32 reference, the active heads'
and extra columns of `a` are never read, row_offset / batch / bf16 cache, and the engine's update
through it. Skipped without a CUDA device or a CUDA-enabled libflashomni."""

import numpy as np
import pytest

from cuda_env import require_cuda

torch, fo = require_cuda()

BLOCK = 128


def random_symbols(batch, heads, tokens, density, seed):
    """Symbols on the GPU with random Sq over `tokens` (every key block kept)."""
    rng = np.random.default_rng(seed)
    q_blocks = -(-tokens // BLOCK)
    qm = rng.random((batch, heads, q_blocks)) < density
    km = np.ones((batch, heads, q_blocks, q_blocks), dtype=bool)
    s = fo.Symbols.from_masks(qm, km, seqlen_q=tokens, seqlen_kv=tokens, block_q=BLOCK,
                              block_kv=BLOCK)
    return s.to("cuda"), qm


def col_active(qm, rows, row_offset, head_dim, extra):
    """[B, rows, heads * head_dim + extra] bool: the column is read by the active part."""
    blocks = (np.arange(rows) + row_offset) // BLOCK
    act = torch.from_numpy(qm[:, :, blocks]).cuda().transpose(1, 2)  # [B, rows, heads]
    ones = torch.ones(*act.shape[:2], extra, dtype=torch.bool, device="cuda")
    return torch.cat([act.repeat_interleave(head_dim, dim=2), ones], dim=2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cache_dtype", [torch.float32, None])
@pytest.mark.parametrize("density,row_offset,batch", [(0.5, 0, 1), (0.3, 128, 2), (1.0, 0, 1),
                                                      (0.0, 0, 1)])
def test_cache_only_equals_full_update_cache(dtype, cache_dtype, density, row_offset, batch):
    heads, head_dim, rows, n, extra = 8, 128, 300, 320, 64
    cache_dtype = cache_dtype or dtype
    k = heads * head_dim + extra
    a = torch.randn(batch, rows, k, device="cuda", dtype=dtype)
    w = torch.randn(n, k, device="cuda", dtype=dtype) / k ** 0.5
    b = torch.randn(n, device="cuda", dtype=dtype)
    s, qm = random_symbols(batch, heads, rows + row_offset, density, seed=4)
    kw = dict(heads=heads, head_dim=head_dim, symbols=s, row_offset=row_offset,
              cache_dtype=cache_dtype)
    _, full = fo.gemm_o_update(a, w, b, **kw)
    cols = col_active(qm, rows, row_offset, head_dim, extra)
    c_ref = (a.float() * ~cols) @ w.float().T + b.float()
    poisoned = a.masked_fill(cols, float("nan"))  # the cache-only form must not read these
    y, cache = fo.gemm_o_update(poisoned, w, b, cache_only=True, **kw)
    torch.cuda.synchronize()
    assert y is None and cache.dtype == full.dtype and cache.shape == full.shape
    tol = 1e-5 if cache_dtype == torch.float32 else 1e-2
    assert torch.isfinite(cache).all()
    assert (cache.float() - c_ref).norm() / c_ref.norm() < tol
    # Same cached-head reduction as the full update: equal up to summation order (the kernel may
    # order it differently when it skips the active heads).
    assert (cache.float() - full.float()).norm() / full.float().norm() < tol


def test_cache_only_in_a_cuda_graph():
    heads, head_dim, rows, n = 4, 128, 256, 256
    a = torch.randn(rows, heads * head_dim, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, heads * head_dim, device="cuda", dtype=torch.bfloat16) / 16
    s, _ = random_symbols(1, heads, rows, 0.5, seed=5)
    cache = torch.zeros(rows, n, device="cuda")
    fo.gemm_o_update(a, w, heads=heads, symbols=s, cache=cache, cache_only=True)  # warm-up
    torch.cuda.synchronize()
    expect = cache.clone()
    cache.zero_()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fo.gemm_o_update(a, w, heads=heads, symbols=s, cache=cache, cache_only=True)
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(cache, expect)
