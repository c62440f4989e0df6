"""FlashOmni Python tests: torch tensors through flashomni.* and the torch custom ops
(torch.ops.flashomni.*) on the CPU backend; skipped where torch is not installed (CPU CI)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import flashomni as fo  # noqa: E402
import flashomni.torch_ops as fot  # noqa: E402

BQ = 16


def _symbols(heads=2, n=32):
    qm = np.zeros((1, heads, n // BQ), dtype=bool)
    qm[0, 0, 0] = qm[0, 1, :] = True
    km = np.ones((1, heads, n // BQ, n // BQ), dtype=bool)
    km[0, 1, 1, 0] = False
    return fo.Symbols.from_masks(qm, km, block_q=BQ, block_kv=BQ), qm


def _qkv(n=32, heads=2, d=16, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(1, n, heads, d, generator=g, dtype=dtype) for _ in range(3))


def test_torch_inputs_match_numpy_and_allocate_torch_outputs():
    q, k, v = _qkv()
    s, _ = _symbols()
    out, lse = fo.sparse_attention(q, k, v, s, return_lse=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert lse.shape == (1, 2, 32) and lse.dtype == torch.float32
    ref, ref_lse = fo.sparse_attention(q.numpy(), k.numpy(), v.numpy(), s, return_lse=True)
    np.testing.assert_array_equal(out.numpy(), ref)
    np.testing.assert_array_equal(lse.numpy(), ref_lse)


def test_torch_bf16_matches_float32_closely():
    q, k, v = _qkv()
    out = fo.sparse_attention(*(t.to(torch.bfloat16) for t in (q, k, v)))
    assert out.dtype == torch.bfloat16
    ref = fo.sparse_attention(*(t.to(torch.bfloat16).float() for t in (q, k, v)))
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


def test_custom_op_attention_keeps_cached_rows():
    q, k, v = _qkv()
    s, qm = _symbols()
    out = torch.full_like(q, 7.25)
    res = fot.sparse_attention(q, k, v, s, out=out)
    assert res is out
    ref = fo.sparse_attention(q.numpy(), k.numpy(), v.numpy(), s, out=np.full(q.shape, 7.25,
                                                                              np.float32))
    np.testing.assert_array_equal(out.numpy(), ref)
    assert torch.all(out[0, 16:, 0] == 7.25)  # head 0, query block 1 is cached


def test_custom_op_gemms_match_python_api():
    g = torch.Generator().manual_seed(1)
    s, _ = _symbols()
    x = torch.randn(32, 24, generator=g)
    wq = torch.randn(32, 24, generator=g)
    q = fot.gemm_q(x, wq, heads=2, symbols=s)
    np.testing.assert_array_equal(q.numpy(), fo.gemm_q(x.numpy(), wq.numpy(), heads=2, symbols=s))
    a = torch.randn(32, 32, generator=g)
    wo = torch.randn(8, 32, generator=g)
    bo = torch.randn(8, generator=g)
    y, cache = fot.gemm_o_update(a, wo, bo, heads=2, symbols=s)
    assert cache.dtype == torch.float32
    y2 = fot.gemm_o_dispatch(a, wo, cache, heads=2, symbols=s)
    torch.testing.assert_close(y2, y)
    torch.testing.assert_close(y, a @ wo.T + bo, rtol=1e-5, atol=1e-5)


def test_opcheck_and_compile():
    q, k, v = _qkv()
    s, _ = _symbols()
    q_bits, kv_bits, shape = fot._symbols_to(s)
    out = torch.zeros_like(q)
    lse = torch.zeros(1, 2, 32)
    torch.library.opcheck(torch.ops.flashomni.sparse_attention.default,
                          (q, k, v, q_bits, kv_bits, shape, out, lse, None, None, 0, 0, 0.0))

    ts = fo.Symbols(q_bits, kv_bits, heads=2, q_blocks=2, kv_blocks=2, block_q=BQ, block_kv=BQ)

    def step(q, k, v):
        return fot.sparse_attention(q, k, v, ts) * 2

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(q, k, v), step(q, k, v))


def test_custom_op_gemm_o_update_cache_only():
    """cache_only=True through torch.ops.flashomni.gemm_o_update (out None): (None, cache), the
    full update's cache bit for bit; the op (and its fake) accept out=None."""
    g = torch.Generator().manual_seed(2)
    s, _ = _symbols()
    a = torch.randn(1, 32, 40, generator=g)  # 2 heads x 16 + 8 extra columns
    w = torch.randn(8, 40, generator=g)
    b = torch.randn(8, generator=g)
    _, full = fot.gemm_o_update(a, w, b, heads=2, head_dim=16, symbols=s, row_offset=0)
    y, cache = fot.gemm_o_update(a, w, b, heads=2, head_dim=16, symbols=s, cache_only=True)
    assert y is None
    torch.testing.assert_close(cache, full, rtol=0, atol=0)
    _, py_cache = fo.gemm_o_update(a, w, b, heads=2, head_dim=16, symbols=s, cache_only=True)
    torch.testing.assert_close(py_cache, full, rtol=0, atol=0)
    q_bits, kv_bits, shape = fot._symbols_to(s)
    torch.library.opcheck(torch.ops.flashomni.gemm_o_update.default,
                          (a, w, b, q_bits, kv_bits, shape, 2, 16, 0, torch.empty(1, 32, 8),
                           None))
