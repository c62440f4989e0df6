"""FlashOmni Python tests: gemm_q, gemm_o_update and gemm_o_dispatch (CPU backend) against float64
NumPy: inactive tiles untouched, row_offset, batched inputs, extra always-active columns, the
cache identity out = cache + active heads, and 16-bit storage."""

import numpy as np
import pytest

import flashomni as fo
from np_reference import from_bf16_bits, gemm_o_reference, gemm_q_reference, random_masks
from np_reference import to_bf16_bits

BQ = 16
SENTINEL = -3.5


def _symbols(rng, batch, heads, tokens, p_q=0.5):
    nqb = -(-tokens // BQ)
    qm, km = random_masks(rng, batch, heads, nqb, 1, [nqb] * batch, [1] * batch, p_q=p_q, p_kv=1)
    s = fo.Symbols.from_masks(qm, km, seqlen_q=tokens, seqlen_kv=16, block_q=BQ, block_kv=16)
    return qm, s


@pytest.mark.parametrize("row_offset,batched,with_bias", [(0, False, True), (8, True, False),
                                                          (21, False, True)])
def test_gemm_q_matches_numpy_on_active_tiles(row_offset, batched, with_bias):
    rng = np.random.default_rng(row_offset)
    heads, head_dim, kdim, rows = 3, 8, 24, 40
    batch = 2 if batched else 1
    qm, s = _symbols(rng, batch, heads, rows + row_offset)
    x = rng.standard_normal((batch, rows, kdim))
    w = rng.standard_normal((heads * head_dim, kdim))
    bias = rng.standard_normal(heads * head_dim) if with_bias else None
    xin = x if batched else x[0]
    out = np.full(xin.shape[:-1] + (heads * head_dim,), SENTINEL)
    res = fo.gemm_q(xin, w, bias, heads=heads, symbols=s, row_offset=row_offset, out=out)
    assert res is out
    out = out if batched else out[None]
    for b in range(batch):
        full, written = gemm_q_reference(x[b], w, bias, heads, head_dim, qm[b], BQ, row_offset)
        np.testing.assert_allclose(out[b][written], full[written], rtol=1e-12, atol=1e-12)
        assert np.all(out[b][~written] == SENTINEL)
        assert written.any() and (~written).any()


def test_gemm_q_dense_allocates_output():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20, 16)).astype(np.float32)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    out = fo.gemm_q(x, w, heads=2)
    assert out.shape == (20, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("extra,row_offset,batched", [(0, 0, False), (12, 5, True)])
def test_gemm_o_update_and_dispatch(extra, row_offset, batched):
    rng = np.random.default_rng(extra + row_offset)
    heads, head_dim, n, rows = 4, 8, 20, 37
    batch = 2 if batched else 1
    qm, s = _symbols(rng, batch, heads, rows + row_offset)
    a = rng.standard_normal((batch, rows, heads * head_dim + extra))
    w = rng.standard_normal((n, heads * head_dim + extra))
    bias = rng.standard_normal(n)
    ain = a if batched else a[0]
    out, cache = fo.gemm_o_update(ain, w, bias, heads=heads, head_dim=head_dim, symbols=s,
                                  row_offset=row_offset, cache_dtype="float64")
    assert cache.dtype == np.float64 and out.shape == cache.shape == ain.shape[:-1] + (n,)
    refs = [gemm_o_reference(a[b], w, bias, heads, head_dim, qm[b], BQ, row_offset)
            for b in range(batch)]
    ref_cache = np.stack([r[0] for r in refs])
    ref_out = np.stack([r[1] for r in refs])
    np.testing.assert_allclose(cache.reshape(ref_cache.shape), ref_cache, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.reshape(ref_out.shape), ref_out, rtol=1e-12, atol=1e-12)

    # Dispatch never reads cached heads' columns: poison them, the result must not change.
    poisoned = a.copy()
    for b in range(batch):
        for r in range(rows):
            for h in range(heads):
                if not qm[b, h, (r + row_offset) // BQ]:
                    poisoned[b, r, h * head_dim:(h + 1) * head_dim] = np.nan
    pin = poisoned if batched else poisoned[0]
    y = fo.gemm_o_dispatch(pin, w, cache, heads=heads, head_dim=head_dim, symbols=s,
                           row_offset=row_offset)
    np.testing.assert_allclose(y.reshape(ref_out.shape), ref_out, rtol=1e-12, atol=1e-12)


def test_gemm_o_default_cache_is_float32_and_dense_dispatch():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((16, 32)).astype(np.float32)
    w = rng.standard_normal((8, 32)).astype(np.float32)
    out, cache = fo.gemm_o_update(a, w, heads=2)
    assert cache.dtype == np.float32
    # Every head active and no bias: the cache holds only zeros, out is the full product.
    np.testing.assert_array_equal(cache, 0.0)
    np.testing.assert_allclose(out, a.astype(np.float64) @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fo.gemm_o_dispatch(a, w, cache, heads=2), out, rtol=1e-6,
                               atol=1e-6)


def test_gemm_bf16_storage():
    rng = np.random.default_rng(9)
    x = to_bf16_bits(rng.standard_normal((32, 16)))
    w = to_bf16_bits(rng.standard_normal((16, 16)))
    out = fo.gemm_q(x, w, heads=2, dtype="bfloat16")
    assert out.dtype == np.uint16
    ref = from_bf16_bits(x).astype(np.float64) @ from_bf16_bits(w).T.astype(np.float64)
    np.testing.assert_allclose(from_bf16_bits(out), ref, rtol=1e-2, atol=1e-2)
    y, cache = fo.gemm_o_update(x, w, heads=2, dtype="bfloat16", cache_dtype="bfloat16")
    assert y.dtype == np.uint16 and cache.dtype == np.uint16
    np.testing.assert_allclose(from_bf16_bits(y), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("cache_dtype,dtype", [("float32", None), ("bfloat16", "bfloat16"),
                                               ("float32", "bfloat16")])
def test_gemm_o_update_cache_only_equals_full_update_cache(cache_dtype, dtype):
    """cache_only=True: no out (returns None), the same cache bit for bit, and the active heads'
    and extra columns of `a` are never read (poisoned with NaN)."""
    rng = np.random.default_rng(11)
    heads, head_dim, extra, n, rows, batch, row_offset = 4, 8, 6, 20, 37, 2, 5
    qm, s = _symbols(rng, batch, heads, rows + row_offset)
    a = rng.standard_normal((batch, rows, heads * head_dim + extra)).astype(np.float32)
    w = rng.standard_normal((n, heads * head_dim + extra)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    if dtype == "bfloat16":
        a, w, bias = to_bf16_bits(a), to_bf16_bits(w), to_bf16_bits(bias)
    kw = dict(heads=heads, head_dim=head_dim, symbols=s, row_offset=row_offset,
              cache_dtype=cache_dtype, dtype=dtype)
    _, full = fo.gemm_o_update(a, w, bias, **kw)
    poisoned = a.copy()
    nan = to_bf16_bits(np.array([np.nan]))[0] if dtype == "bfloat16" else np.nan
    for b in range(batch):
        for r in range(rows):
            poisoned[b, r, heads * head_dim:] = nan
            for h in range(heads):
                if qm[b, h, (r + row_offset) // BQ]:
                    poisoned[b, r, h * head_dim:(h + 1) * head_dim] = nan
    y, cache = fo.gemm_o_update(poisoned, w, bias, cache_only=True, **kw)
    assert y is None and cache.dtype == full.dtype and cache.shape == full.shape
    np.testing.assert_array_equal(cache, full)
    assert qm.any() and (~qm).any()
    with pytest.raises(ValueError, match="argument 'out'"):
        fo.gemm_o_update(a, w, bias, cache_only=True, out=np.zeros((batch, rows, n)), **kw)


def test_gemm_o_dispatch_rejects_a_null_out_through_the_c_api():
    """The C API takes out.data == NULL as cache-only in gemm_o_update only."""
    import ctypes

    from flashomni import _arrays, _lib, ops

    rng = np.random.default_rng(12)
    a = rng.standard_normal((16, 32))
    w = rng.standard_normal((8, 32))
    bias = rng.standard_normal(8)
    cache = np.full((16, 8), SENTINEL)
    args = ops._gemm_o_args(_arrays.view(a, "a"), _arrays.view(w, "weight"),
                            _arrays.view(bias, "bias"), _arrays.view(cache, "cache"), None, 2, 16,
                            0, None)
    with pytest.raises(ValueError, match="argument 'out'"):
        _lib.call("flashomni_gemm_o_dispatch", ctypes.byref(args), None, 0, None)
    assert np.all(cache == SENTINEL)
    _lib.call("flashomni_gemm_o_update", ctypes.byref(args), None, 0, None)
    np.testing.assert_array_equal(cache, np.broadcast_to(bias, (16, 8)))  # every head active
