"""FlashOmni Python tests: flashomni.Symbols — packed layout, dense construction, converter round
trips (masks, FlexAttention block lists, the reference's packed bytes), validation and density."""

import numpy as np
import pytest

import flashomni as fo
from np_reference import random_masks

LENS_Q, LENS_KV = [70, 0, 33], [40, 100, 16]
CU_Q = np.concatenate([[0], np.cumsum(LENS_Q)]).astype(np.int32)
CU_KV = np.concatenate([[0], np.cumsum(LENS_KV)]).astype(np.int32)
BQ, BKV = 16, 32


def _varlen_masks(seed, heads=3):
    rng = np.random.default_rng(seed)
    qv = [-(-n // BQ) for n in LENS_Q]
    kv = [-(-n // BKV) for n in LENS_KV]
    return random_masks(rng, 3, heads, max(qv), max(kv), qv, kv)


def _varlen_symbols(seed, heads=3):
    qm, km = _varlen_masks(seed, heads)
    s = fo.Symbols.from_masks(qm, km, cu_seqlens_q=CU_Q, cu_seqlens_kv=CU_KV, block_q=BQ,
                              block_kv=BKV)
    return s, qm, km


def test_packed_layout_matches_the_documented_bit_order():
    rng = np.random.default_rng(0)
    qm = rng.random((2, 3, 40)) < 0.5  # 40 query blocks: two q words per (b, h)
    km = rng.random((2, 3, 40, 35)) < 0.5  # 35 key blocks: two kv words per row
    s = fo.Symbols.from_masks(qm, km)
    assert s.q_bits.shape == (2, 3, 2) and s.kv_bits.shape == (2, 3, 40, 2)
    for b, h, i in [(0, 0, 0), (1, 2, 39), (0, 1, 33)]:
        assert s.query(b, h, i) == qm[b, h, i]
        assert bool((int(s.q_bits[b, h, i // 32]) >> (i % 32)) & 1) == qm[b, h, i]
        for j in (0, 31, 32, 34):
            assert s.kv(b, h, i, j) == km[b, h, i, j]
    assert s.q_bits[0, 0, 1] >> 8 == 0  # bits past q_blocks are 0


def test_dense_keeps_padding_bits_zero_for_varlen():
    s = fo.Symbols.dense(2, cu_seqlens_q=CU_Q, cu_seqlens_kv=CU_KV, block_q=BQ, block_kv=BKV)
    assert s.shape == (3, 2, 5, 4)
    qm, km = s.to_masks()
    for b, (nq, nk) in enumerate(zip(LENS_Q, LENS_KV)):
        nqb, nkb = -(-nq // BQ), -(-nk // BKV)
        assert qm[b, :, :nqb].all() and not qm[b, :, nqb:].any()
        assert km[b, :, :nqb, :nkb].all() and not km[b, :, nqb:].any()
        assert not km[b, :, :, nkb:].any()
    s.validate()
    uniform = fo.Symbols.dense(4, 300, 129, batch=2)
    assert uniform.shape == (2, 4, 3, 2) and uniform.block_q == 128
    assert np.all(uniform.q_bits == 0b111) and np.all(uniform.kv_bits == 0b11)


def test_masks_round_trip():
    s, qm, km = _varlen_symbols(1)
    qm2, km2 = s.to_masks()
    np.testing.assert_array_equal(qm2, qm)
    np.testing.assert_array_equal(km2, km)


def test_block_lists_round_trip():
    s, qm, km = _varlen_symbols(2)
    num, idx, qmask = s.to_block_lists()
    assert num.dtype == np.int32 and idx.shape == km.shape
    np.testing.assert_array_equal(num, km.sum(-1))
    np.testing.assert_array_equal(qmask, qm)
    b, h, i = np.argwhere(num > 1)[0]
    np.testing.assert_array_equal(idx[b, h, i, :num[b, h, i]], np.flatnonzero(km[b, h, i]))
    back = fo.Symbols.from_block_lists(num, idx, qmask, cu_seqlens_q=CU_Q, cu_seqlens_kv=CU_KV,
                                       block_q=BQ, block_kv=BKV)
    np.testing.assert_array_equal(back.q_bits, s.q_bits)
    np.testing.assert_array_equal(back.kv_bits, s.kv_bits)


def test_reference_packed_round_trip_and_format():
    heads = 3
    s, qm, km = _varlen_symbols(3, heads)
    qp, qi, kp, ki = s.to_reference_packed()
    assert qi[0] == 0 and ki[0] == 0 and qi[-1] == qp.size and ki[-1] == kp.size
    # Request 0: Sq flags laid out [nQ, H], 8 per byte, least-significant bit first.
    nq0 = -(-LENS_Q[0] // BQ)
    flags = np.unpackbits(qp[qi[0]:qi[1]], bitorder="little")[:nq0 * heads]
    np.testing.assert_array_equal(flags.reshape(nq0, heads), qm[0, :, :nq0].T)
    back = fo.Symbols.from_reference_packed(qp, qi, kp, ki, heads=heads, cu_seqlens_q=CU_Q,
                                            cu_seqlens_kv=CU_KV, block_q=BQ, block_kv=BKV)
    np.testing.assert_array_equal(back.q_bits, s.q_bits)
    np.testing.assert_array_equal(back.kv_bits, s.kv_bits)


def test_density_matches_numpy_counts():
    s, qm, km = _varlen_symbols(4)
    d = s.density()
    assert set(d) == {"query", "query_token", "kv", "pair", "token_pair"}
    per = s.densities()
    assert len(per) == 3 * 3 and (per[4]["b"], per[4]["h"]) == (1, 1)
    active = kept = valid_q = valid_pairs = 0
    for b, (nq, nk) in enumerate(zip(LENS_Q, LENS_KV)):
        nqb, nkb = -(-nq // BQ), -(-nk // BKV)
        for h in range(3):
            e = per[b * 3 + h]
            pairs = int((km[b, h] & qm[b, h][:, None]).sum())
            assert e["active_q_blocks"] == qm[b, h].sum() and e["kept_pairs"] == pairs
            if nqb * nkb:
                assert e["pair_density"] == pytest.approx(pairs / (nqb * nkb))
            active, kept = active + qm[b, h].sum(), kept + pairs
            valid_q, valid_pairs = valid_q + nqb, valid_pairs + nqb * nkb
    assert d["query"]["overall"] == pytest.approx(active / valid_q)
    assert d["pair"]["overall"] == pytest.approx(kept / valid_pairs)
    assert fo.Symbols.dense(2, 100, 100).density()["token_pair"]["overall"] == pytest.approx(1.0)


def test_validate_rejects_nonzero_padding_bits_and_wrong_lengths():
    s = fo.Symbols.dense(2, 100, 100, block_q=BQ, block_kv=BKV)
    s.validate()
    with pytest.raises(ValueError, match="symbols.q_blocks"):
        s.validate(seqlen_q=200)
    bad = fo.Symbols(s.q_bits | np.uint32(1 << 20), s.kv_bits, heads=2, q_blocks=7, kv_blocks=4,
                     block_q=BQ, block_kv=BKV, seqlen_q=100, seqlen_kv=100)
    with pytest.raises(ValueError, match="symbols.q_bits"):
        bad.validate()


def test_constructor_checks_word_counts():
    with pytest.raises(ValueError, match="'q_bits'"):
        fo.Symbols(np.zeros(3, np.uint32), np.zeros(8, np.uint32), heads=2, q_blocks=4,
                   kv_blocks=4)
    with pytest.raises(ValueError, match="'kv_bits'"):
        fo.Symbols(np.zeros(2, np.uint32), np.zeros(7, np.uint32), heads=2, q_blocks=4,
                   kv_blocks=4)
    with pytest.raises(ValueError, match="'kv_bits'"):
        fo.Symbols(np.zeros(2, np.uint32), np.zeros(8, np.float32), heads=2, q_blocks=4,
                   kv_blocks=4)
    s = fo.Symbols(np.zeros(2, np.int32), np.zeros(8, np.int32), heads=2, q_blocks=4, kv_blocks=4)
    assert s.q_bits.dtype == np.uint32 and s.device == "cpu" and not s.is_cuda


def test_converter_errors_name_the_argument():
    qm, km = _varlen_masks(5)
    with pytest.raises(ValueError, match="kv_mask"):
        fo.Symbols.from_masks(qm, km[..., :1], cu_seqlens_q=CU_Q, cu_seqlens_kv=CU_KV,
                              block_q=BQ, block_kv=BKV)
    km_bad = km.copy()
    km_bad[2, 0, 0, 3] = True  # request 2 has a single key block
    with pytest.raises(ValueError, match="kv_mask"):
        fo.Symbols.from_masks(qm, km_bad, cu_seqlens_q=CU_Q, cu_seqlens_kv=CU_KV, block_q=BQ,
                              block_kv=BKV)
    with pytest.raises(ValueError, match="block_q"):
        fo.Symbols.dense(2, 64, 64, block_q=24)
    with pytest.raises(ValueError, match="cu_seqlens_kv"):
        fo.Symbols.dense(2, cu_seqlens_q=CU_Q)
    s, _, _ = _varlen_symbols(6)
    num, idx, qmask = s.to_block_lists()
    idx[0, 0, 0, 0] = 99
    num[0, 0, 0] = max(num[0, 0, 0], 1)
    with pytest.raises(ValueError, match="kv_indices"):
        fo.Symbols.from_block_lists(num, idx, qmask, cu_seqlens_q=CU_Q, cu_seqlens_kv=CU_KV,
                                    block_q=BQ, block_kv=BKV)


def test_to_device_needs_torch_for_gpu():
    torch = pytest.importorskip("torch")
    s = fo.Symbols.dense(2, 64, 64)
    moved = s.to("cpu")
    assert moved is s
    t = s.to(torch.device("cpu"))
    assert t.shape == s.shape
    if torch.cuda.is_available():
        g = s.to("cuda")
        assert g.is_cuda and g.device.startswith("cuda")
        np.testing.assert_array_equal(g.cpu().q_bits, s.q_bits)


def test_shape_fields_are_rechecked_before_each_call():
    s = fo.Symbols.dense(2, 64, 64, block_q=BQ, block_kv=BKV)
    s.q_blocks = 40  # would make the C side read past the words
    with pytest.raises(ValueError, match="'symbols'"):
        s.validate()


def test_c_struct_is_reused_until_words_or_fields_change():
    """Symbols.c() keeps one struct per words/fields (ops call it every time): the same object
    while nothing changes, rebuilt (and rechecked) when a field or a word array is replaced."""
    s = fo.Symbols.dense(2, 64, 64, block_q=BQ, block_kv=BKV)
    first = s.c()
    assert s.c() is first and first.q_bits == s.q_bits.ctypes.data
    s.q_bits = s.q_bits.copy()
    moved = s.c()
    assert moved is not first and moved.q_bits == s.q_bits.ctypes.data
    # The cache keeps the array it was built from alive (compared by identity): were it keyed by
    # id() alone, a later array could take the freed array's address and match a stale pointer.
    import gc
    import weakref

    built_from = weakref.ref(s.q_bits)
    s.q_bits = s.q_bits.copy()
    s.q_bits = s.q_bits.copy()
    gc.collect()
    assert built_from() is not None
    assert s.c().q_bits == s.q_bits.ctypes.data
    gc.collect()
    assert built_from() is None  # released once the struct is rebuilt
    s.q_blocks = 40  # would make the C side read past the words
    with pytest.raises(ValueError, match="'symbols'"):
        s.c()


def test_array_view_struct_holds_the_view_fields():
    from flashomni import _arrays

    for arr in (np.zeros((3, 5, 7), np.float32)[:, ::2, 1:], np.zeros(4, np.int32),
                np.zeros((2, 3, 4, 5), np.float64).transpose(3, 1, 0, 2)):
        v = _arrays.view(arr, "x")
        t = v.c()
        assert (t.data, t.dtype, t.device, t.ndim) == (v.data, v.dtype, v.device, arr.ndim)
        assert tuple(t.shape) == v.shape + (0,) * (4 - arr.ndim)
        assert tuple(t.strides) == v.strides + (0,) * (4 - arr.ndim)
        assert v.strides == tuple(s // arr.itemsize for s in arr.strides)
