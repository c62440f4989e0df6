"""FlashOmni Python tests: flashomni.sparse_attention (CPU backend) against a float64 NumPy
reference with the symbols expanded to token masks: random symbols, partial last blocks, GQA,
varlen, cached rows left untouched, rows with no kept key, 16-bit storage."""

import math

import numpy as np
import pytest

import flashomni as fo
from np_reference import attention_request, from_bf16_bits, random_masks, to_bf16_bits

BQ, BKV = 16, 32
SENTINEL = 7.25  # exactly representable in every storage type


def default_scale(d):
    # The library's softmax_scale is a float32 (AttentionParams): the reference uses the same value.
    return float(np.float32(1 / math.sqrt(d)))


def _blocks(n, block):
    return -(-n // block)


def _reference_uniform(q, k, v, qm, km, scale):
    outs, lses, comp = [], [], []
    for b in range(q.shape[0]):
        o, l, c = attention_request(q[b], k[b], v[b], qm[b], km[b], BQ, BKV, scale)
        outs.append(o), lses.append(l), comp.append(c)
    return np.stack(outs), np.stack(lses), np.stack(comp)


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (3, 1)])
@pytest.mark.parametrize("nq,nkv", [(64, 96), (75, 50)])
def test_random_symbols_uniform(heads, kv_heads, nq, nkv):
    rng = np.random.default_rng(heads * 100 + nq)
    batch, d = 2, 32
    q = rng.standard_normal((batch, nq, heads, d))
    k = rng.standard_normal((batch, nkv, kv_heads, d))
    v = rng.standard_normal((batch, nkv, kv_heads, d))
    nqb, nkb = _blocks(nq, BQ), _blocks(nkv, BKV)
    qm, km = random_masks(rng, batch, heads, nqb, nkb, [nqb] * batch, [nkb] * batch)
    s = fo.Symbols.from_masks(qm, km, seqlen_q=nq, seqlen_kv=nkv, block_q=BQ, block_kv=BKV)
    out = np.full(q.shape, SENTINEL)
    lse = np.full((batch, heads, nq), SENTINEL, dtype=np.float32)
    res = fo.sparse_attention(q, k, v, s, out=out, lse=lse, return_lse=True)
    assert res[0] is out and res[1] is lse
    ref_o, ref_l, computed = _reference_uniform(q, k, v, qm, km, default_scale(d))
    comp_o = computed.transpose(0, 2, 1)  # [B, Nq, H]
    np.testing.assert_allclose(out[comp_o], ref_o[comp_o], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(lse[computed], ref_l[computed], rtol=1e-5, atol=1e-5)
    # Cached (b, h, i): out and lse rows are not written.
    assert np.all(out[~comp_o] == SENTINEL)
    assert np.all(lse[~computed] == np.float32(SENTINEL))
    assert (~computed).any() and computed.any()


def test_dense_equals_full_attention_and_scale():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((1, 40, 2, 16)).astype(np.float32)
    k = rng.standard_normal((1, 33, 2, 16)).astype(np.float32)
    v = rng.standard_normal((1, 33, 2, 16)).astype(np.float32)
    out, lse = fo.sparse_attention(q, k, v, softmax_scale=0.3, return_lse=True)
    assert out.dtype == np.float32 and lse.shape == (1, 2, 40)
    s = np.einsum("nhd,mhd->hnm", q[0].astype(np.float64), k[0].astype(np.float64)) * 0.3
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = np.einsum("hnm,mhd->nhd", p / p.sum(-1, keepdims=True), v[0].astype(np.float64))
    np.testing.assert_allclose(out[0], ref, rtol=1e-5, atol=1e-5)
    lse_ref = np.log(np.exp(s).sum(-1))
    np.testing.assert_allclose(lse[0], lse_ref, rtol=1e-5, atol=1e-5)
    # Dense symbols give the same result as symbols=None.
    dense = fo.Symbols.dense(2, 40, 33, block_q=BQ, block_kv=BKV)
    np.testing.assert_array_equal(fo.sparse_attention(q, k, v, dense, softmax_scale=0.3), out)


def test_rows_without_kept_keys_are_zero_with_minus_inf_lse():
    rng = np.random.default_rng(2)
    q = rng.standard_normal((1, 32, 2, 16))
    k = rng.standard_normal((1, 64, 2, 16))
    v = rng.standard_normal((1, 64, 2, 16))
    qm = np.ones((1, 2, 2), dtype=bool)
    km = np.ones((1, 2, 2, 2), dtype=bool)
    km[0, 1, 0, :] = False  # head 1, query block 0: every key block skipped
    s = fo.Symbols.from_masks(qm, km, block_q=BQ, block_kv=BKV)
    out, lse = fo.sparse_attention(q, k, v, s, return_lse=True)
    assert np.all(out[0, :16, 1, :] == 0.0)
    assert np.all(np.isneginf(lse[0, 1, :16]))
    assert np.all(np.isfinite(lse[0, 0])) and np.all(np.isfinite(lse[0, 1, 16:]))


def test_allocated_outputs_are_zero_in_cached_rows():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 32, 1, 16))
    qm = np.array([[[True, False]]])
    km = np.ones((1, 1, 2, 1), dtype=bool)
    s = fo.Symbols.from_masks(qm, km, block_q=BQ, block_kv=BKV)
    out, lse = fo.sparse_attention(q, q, q, s, return_lse=True)
    assert np.all(out[0, 16:] == 0.0) and np.all(lse[0, 0, 16:] == 0.0)
    assert np.any(out[0, :16] != 0.0)


def test_varlen_gqa_against_per_request_reference():
    rng = np.random.default_rng(4)
    heads, kv_heads, d = 4, 2, 32
    lens_q, lens_kv = [50, 0, 17, 64], [40, 30, 81, 5]
    cu_q = np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32)
    cu_kv = np.concatenate([[0], np.cumsum(lens_kv)]).astype(np.int32)
    q = rng.standard_normal((cu_q[-1], heads, d))
    k = rng.standard_normal((cu_kv[-1], kv_heads, d))
    v = rng.standard_normal((cu_kv[-1], kv_heads, d))
    nqb, nkb = _blocks(max(lens_q), BQ), _blocks(max(lens_kv), BKV)
    qv = [_blocks(n, BQ) for n in lens_q]
    kvv = [_blocks(n, BKV) for n in lens_kv]
    qm, km = random_masks(rng, 4, heads, nqb, nkb, qv, kvv)
    s = fo.Symbols.from_masks(qm, km, cu_seqlens_q=cu_q, cu_seqlens_kv=cu_kv, block_q=BQ,
                              block_kv=BKV)
    out = np.full(q.shape, SENTINEL)
    lse = np.full((heads, cu_q[-1]), SENTINEL, dtype=np.float32)
    fo.sparse_attention(q, k, v, s, out=out, lse=lse, cu_seqlens_q=list(cu_q),
                        cu_seqlens_kv=cu_kv)
    for b in range(4):
        rq, rk = slice(cu_q[b], cu_q[b + 1]), slice(cu_kv[b], cu_kv[b + 1])
        ref_o, ref_l, comp = attention_request(q[rq], k[rk], v[rk], qm[b], km[b], BQ, BKV,
                                               default_scale(d))
        o, l = out[rq], lse[:, rq]
        np.testing.assert_allclose(o[comp.T], ref_o[comp.T], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(l[comp], ref_l[comp], rtol=1e-5, atol=1e-5)
        assert np.all(o[~comp.T] == SENTINEL) and np.all(l[~comp] == np.float32(SENTINEL))


@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_16bit_storage(storage):
    rng = np.random.default_rng(5)
    shape_q, shape_k = (1, 48, 2, 32), (1, 40, 1, 32)
    q32, k32, v32 = (rng.standard_normal(s).astype(np.float32) for s in (shape_q, shape_k, shape_k))
    if storage == "float16":
        q, k, v = (a.astype(np.float16) for a in (q32, k32, v32))
        back = lambda a: a.astype(np.float64)  # noqa: E731
        kwargs = {}
    else:
        q, k, v = (to_bf16_bits(a) for a in (q32, k32, v32))
        back = lambda a: from_bf16_bits(a).astype(np.float64)  # noqa: E731
        kwargs = {"dtype": "bfloat16"}
    out = fo.sparse_attention(q, k, v, **kwargs)
    assert out.dtype == q.dtype and out.shape == q.shape
    qm = np.ones((1, 2, 3), dtype=bool)
    km = np.ones((1, 2, 3, 2), dtype=bool)
    ref, _, _ = _reference_uniform(back(q), back(k), back(v), qm, km, default_scale(32))
    tol = 1e-2 if storage == "bfloat16" else 2e-3
    np.testing.assert_allclose(back(out), ref, rtol=tol, atol=tol)


def test_strided_views_are_accepted():
    rng = np.random.default_rng(6)
    qkv = rng.standard_normal((1, 32, 3, 2, 16))  # packed [B, N, 3, H, d]: non-contiguous views
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    out = fo.sparse_attention(q, k, v)
    ref = fo.sparse_attention(*(np.ascontiguousarray(a) for a in (q, k, v)))
    np.testing.assert_array_equal(out, ref)
