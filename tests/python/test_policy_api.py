"""FlashOmni Python tests: flashomni.run_policy and flashomni.forecast on the CPU through the C API
(flashomni_run_policy / flashomni_forecast) — the symbols against an independent NumPy model of
policy.h (uniform and varlen, GQA, text first / last / per request, partial blocks, block_q !=
block_kv, every option), the returned densities, defaults, and errors naming the argument."""

import ctypes

import numpy as np
import pytest

import flashomni as fo
from flashomni import _lib
from np_reference import to_bf16_bits


def _seq_sum(x, axis=-1):
    """Sum in index order (the oracle's order), not NumPy's pairwise summation."""
    return np.cumsum(x, axis=axis).take(-1, axis=axis) if x.shape[axis] else np.zeros(
        np.delete(x.shape, axis if axis >= 0 else x.ndim + axis))


def _overlap(a0, a1, b0, b1):
    return max(0, min(a1, b1) - max(a0, b0))


def _prefix_within(values, order, threshold):
    cum, n = 0.0, 0
    for idx in order:
        cum += values[idx]
        if cum > threshold:
            break
        n += 1
    return n


def reference_policy(qs, ks, texts, *, bq, bkv, step, num_steps=50, tau_q=0.5, tau_kv=0.15,
                     kv_top_k=0, cache_queries=True, skip_kv=True, keep_diagonal=False,
                     keep_text_kv=False, skip_kv_for_text=False, weight_by_tokens=True):
    """Sq / Skv masks of policy.h from per-request q [lq, H, d] and k [lk, Hkv, d]."""
    heads, d = qs[0].shape[1], qs[0].shape[2]
    group = heads // ks[0].shape[1]
    phi = (step / num_steps) ** 2
    n_q = max(-(-q.shape[0] // bq) for q in qs)
    n_k = max(-(-k.shape[0] // bkv) for k in ks)
    qm = np.zeros((len(qs), heads, n_q), bool)
    km = np.zeros((len(qs), heads, n_q, n_k), bool)
    for b, (q, k, (t0, t1)) in enumerate(zip(qs, ks, texts)):
        lq, lk = q.shape[0], k.shape[0]
        nq, nk = -(-lq // bq), -(-lk // bkv)
        qb = [(i * bq, min(lq, (i + 1) * bq)) for i in range(nq)]
        kb = [(j * bkv, min(lk, (j + 1) * bkv)) for j in range(nk)]
        qbar = np.stack([_seq_sum(q[a:e].astype(np.float64), 0) / (e - a) for a, e in qb], 1)
        kbar = np.stack([_seq_sum(k[a:e].astype(np.float64), 0) / (e - a) for a, e in kb], 1)
        count = np.array([e - a for a, e in kb], np.float64)
        q_text = np.array([_overlap(a, e, t0, t1) for a, e in qb])
        k_text = np.array([_overlap(a, e, t0, t1) for a, e in kb]) / count
        for h in range(heads):
            logits = _seq_sum(qbar[h][:, None, :] * kbar[h // group][None, :, :]) / np.sqrt(d)
            x = logits + (np.log(count / bkv) if weight_by_tokens else 0.0)
            e = np.exp(x - x.max(axis=1, keepdims=True))
            a = e / _seq_sum(e)[:, None]
            active = np.ones(nq, bool)
            image = [i for i in range(nq) if q_text[i] == 0]
            if cache_queries and image and t1 > t0:
                t2i = np.zeros(len(image))
                for t in range(nq):
                    if q_text[t] == 0:
                        continue
                    for x_, i in enumerate(image):
                        for j in range(nk):
                            o = _overlap(*qb[i], *kb[j])
                            if o > 0:
                                t2i[x_] += q_text[t] * a[t, j] * o / count[j]
                t2i /= q_text.sum()
                i2t = np.array([_seq_sum(a[i] * k_text) for i in image])
                st, si = _seq_sum(t2i), _seq_sum(i2t)
                parts = int(st > 0) + int(si > 0)
                if parts:
                    score = np.zeros(len(image))
                    if st > 0:
                        score += t2i / st / parts
                    if si > 0:
                        score += i2t / si / parts
                    order = np.argsort(score, kind="stable")
                    for m in order[:_prefix_within(score, order, tau_q * phi)]:
                        active[image[m]] = False
            qm[b, h, :nq] = active
            for i in range(nq):
                kept = np.ones(nk, bool)
                if skip_kv and nk and not (q_text[i] > 0 and not skip_kv_for_text):
                    order = np.argsort(a[i], kind="stable")
                    skip = (max(0, nk - kv_top_k) if kv_top_k > 0 else
                            _prefix_within(a[i], order, tau_kv * phi))
                    kept[order[:min(skip, nk - 1)]] = False
                    for j in range(nk):
                        if keep_diagonal and _overlap(*qb[i], *kb[j]) > 0:
                            kept[j] = True
                        if keep_text_kv and k_text[j] > 0:
                            kept[j] = True
                km[b, h, i, :nk] = kept
    return qm, km


def _random(rng, lens, heads, d, dtype=np.float32):
    # Block-structured data (a per-block offset) so that pooled logits spread and decisions vary.
    out = []
    for n in lens:
        x = rng.standard_normal((n, heads, d)) + 2.0 * np.repeat(
            rng.standard_normal((-(-n // 16), heads, d)), 16, axis=0)[:n]
        out.append(x.astype(dtype))
    return out


CASES = {
    "text_first": dict(lens=[600, 600], text=[(0, 100)], bq=64, bkv=64, step=30),
    "text_last": dict(lens=[600], text=[(470, 600)], bq=64, bkv=64, step=45),
    "no_text": dict(lens=[520], text=None, bq=64, bkv=64, step=40),
    "bq_ne_bkv": dict(lens=[700], text=[(0, 90)], bq=32, bkv=64, step=35),
    "top_k": dict(lens=[600], text=[(0, 100)], bq=64, bkv=64, step=30, kv_top_k=3),
    "keep_rules": dict(lens=[600], text=[(250, 330)], bq=64, bkv=64, step=49, keep_diagonal=True,
                       keep_text_kv=True, skip_kv_for_text=True),
    "unweighted": dict(lens=[600], text=[(0, 100)], bq=64, bkv=64, step=30,
                       weight_by_tokens=False, tau_kv=0.5, tau_q=0.9),
    "no_kv_skip": dict(lens=[600], text=[(0, 100)], bq=64, bkv=64, step=30, skip_kv=False),
    "step_zero": dict(lens=[600], text=[(0, 100)], bq=64, bkv=64, step=0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_uniform_symbols_match_the_numpy_model(case):
    c = dict(CASES[case])
    lens, text, bq, bkv, step = (c.pop(n) for n in ("lens", "text", "bq", "bkv", "step"))
    rng = np.random.default_rng(len(case))
    qs, ks = _random(rng, lens, 4, 32), _random(rng, lens, 2, 32)  # GQA: 4 query / 2 kv heads
    s = fo.run_policy(np.stack(qs), np.stack(ks), text=text, step=step, block_q=bq,
                      block_kv=bkv, **c)
    qm, km = reference_policy(qs, ks, (text or [(0, 0)]) * len(lens), bq=bq, bkv=bkv, step=step,
                              **c)
    got_q, got_kv = s.to_masks()
    np.testing.assert_array_equal(got_q, qm)
    np.testing.assert_array_equal(got_kv, km)
    s.validate()


def test_step_zero_keeps_everything_and_late_steps_prune():
    rng = np.random.default_rng(3)
    q, k = np.stack(_random(rng, [600], 2, 32)), np.stack(_random(rng, [600], 2, 32))
    early = fo.run_policy(q, k, text=(0, 100), step=0, block_q=64, block_kv=64).density()
    late = fo.run_policy(q, k, text=(0, 100), step=49, block_q=64, block_kv=64).density()
    assert early["pair"]["overall"] == 1.0
    assert late["pair"]["overall"] < 1.0 and late["query"]["overall"] < 1.0


@pytest.mark.parametrize("per_request_text", [False, True])
def test_varlen_symbols_match_the_numpy_model(per_request_text):
    rng = np.random.default_rng(7)
    lens = [300, 517, 64]
    qs, ks = _random(rng, lens, 4, 16), _random(rng, lens, 4, 16)
    cu = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    text = [(0, 40), (450, 517), (10, 30)] if per_request_text else [(0, 40)]
    s, dens = fo.run_policy(np.concatenate(qs), np.concatenate(ks), text=text, step=40,
                            cu_seqlens_q=cu, cu_seqlens_kv=cu, block_q=32, block_kv=32,
                            return_densities=True)
    texts = text if per_request_text else text * len(lens)
    qm, km = reference_policy(qs, ks, texts, bq=32, bkv=32, step=40)
    got_q, got_kv = s.to_masks()
    np.testing.assert_array_equal(got_q, qm)
    np.testing.assert_array_equal(got_kv, km)
    assert dens == s.densities()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_storage_dtypes(dtype):
    rng = np.random.default_rng(11)
    qs, ks = _random(rng, [400], 2, 32, np.float64), _random(rng, [400], 2, 32, np.float64)
    if dtype == "bfloat16":
        q, k = to_bf16_bits(np.stack(qs)), to_bf16_bits(np.stack(ks))
        ref_q = [(q.astype(np.uint32) << 16).view(np.float32)[0]]
        ref_k = [(k.astype(np.uint32) << 16).view(np.float32)[0]]
        s = fo.run_policy(q, k, text=(0, 50), step=40, block_q=64, block_kv=64, dtype="bfloat16")
    else:
        q, k = np.stack(qs).astype(dtype), np.stack(ks).astype(dtype)
        ref_q, ref_k = [q[0]], [k[0]]
        s = fo.run_policy(q, k, text=(0, 50), step=40, block_q=64, block_kv=64)
    qm, km = reference_policy(ref_q, ref_k, [(0, 50)], bq=64, bkv=64, step=40)
    got_q, got_kv = s.to_masks()
    np.testing.assert_array_equal(got_q, qm)
    np.testing.assert_array_equal(got_kv, km)


def test_cross_attention_needs_cache_queries_off():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((1, 256, 2, 16)).astype(np.float32)
    k = rng.standard_normal((1, 192, 2, 16)).astype(np.float32)
    with pytest.raises(ValueError, match="cache_queries"):
        fo.run_policy(q, k, step=10, block_q=64, block_kv=64)
    s = fo.run_policy(q, k, step=10, block_q=64, block_kv=64, cache_queries=False)
    assert s.shape == (1, 2, 4, 3) and s.density()["query"]["overall"] == 1.0


def test_densities_are_those_of_the_symbols():
    rng = np.random.default_rng(9)
    q, k = np.stack(_random(rng, [600], 3, 16)), np.stack(_random(rng, [600], 3, 16))
    s, dens = fo.run_policy(q, k, text=(0, 100), step=45, block_q=64, block_kv=64,
                            return_densities=True)
    assert dens == s.densities()
    assert [(d["b"], d["h"]) for d in dens] == [(0, 0), (0, 1), (0, 2)]


def test_default_args_are_policy_config_defaults():
    args = _lib.PolicyArgs()
    args.struct_size = ctypes.sizeof(args)
    _lib.call("flashomni_policy_default_args", ctypes.byref(args))
    assert (args.num_steps, args.block_q, args.block_kv, args.kv_top_k) == (50, 128, 128, 0)
    assert (args.tau_q, args.tau_kv, args.softmax_scale) == (0.5, 0.15, 0.0)
    assert (args.cache_queries, args.skip_kv, args.weight_by_tokens) == (1, 1, 1)
    assert (args.keep_diagonal, args.keep_text_kv, args.skip_kv_for_text) == (0, 0, 0)
    args.struct_size = 8
    with pytest.raises(ValueError, match="struct_size"):
        _lib.call("flashomni_policy_default_args", ctypes.byref(args))


def test_workspace_is_zero_on_the_cpu_and_shape_follows_the_longest_request():
    q = np.zeros((70, 2, 16), np.float32)
    args = _lib.PolicyArgs()
    args.struct_size = ctypes.sizeof(args)
    _lib.call("flashomni_policy_default_args", ctypes.byref(args))
    cu = np.array([0, 20, 70], np.int32)
    args.q = args.k = fo._arrays.view(q, "q").c()
    args.cu_seqlens_q = args.cu_seqlens_kv = fo._arrays.view(cu, "cu").c()
    args.block_q = args.block_kv = 16
    n = ctypes.c_size_t(123)
    _lib.call("flashomni_policy_workspace_size", ctypes.byref(args), ctypes.byref(n))
    assert n.value == 0
    shape = _lib.SymbolsStruct()
    _lib.call("flashomni_policy_symbols_shape", ctypes.byref(args), ctypes.byref(shape))
    assert (shape.batch, shape.heads, shape.q_blocks, shape.kv_blocks) == (2, 2, 4, 4)
    args.q_bits = None  # outputs are required
    with pytest.raises(ValueError, match="q_bits|q_words"):
        _lib.call("flashomni_run_policy", ctypes.byref(args), None, 0, None)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(step=50), "'step'"),
        (dict(step=-1), "'step'"),
        (dict(step=3, num_steps=0), "'config.num_steps'"),
        (dict(step=3, tau_q=-0.1), "'config.tau_q'"),
        (dict(step=3, tau_kv=float("nan")), "'config.tau_kv'"),
        (dict(step=3, kv_top_k=-2), "'config.kv_top_k'"),
        (dict(step=3, text=(0, 300)), "'text'"),
        (dict(step=3, text=[(0, 10), (0, 20), (0, 5)]), "'text'"),
        (dict(step=3, block_q=40), "'block_q'"),
    ],
)
def test_errors_name_the_argument(kwargs, name):
    q = np.zeros((2, 256, 2, 16), np.float32)
    with pytest.raises(ValueError) as info:
        fo.run_policy(q, q, block_kv=kwargs.pop("block_kv", 64),
                      **{"block_q": 64, **kwargs})
    assert name in str(info.value)


def reference_output_change(now, prev, lens, bq, texts, step, num_steps=50, tau_q=0.5):
    """Sq of QueryScore::kOutputChange (policy.h) from per-request outputs [l, H, dv]."""
    heads, n_q = now[0].shape[1], max(-(-n // bq) for n in lens)
    qm = np.zeros((len(lens), heads, n_q), bool)
    threshold = tau_q * (step / num_steps) ** 2
    for b, (o1, o0, n, (t0, t1)) in enumerate(zip(now, prev, lens, texts)):
        nq = -(-n // bq)
        qm[b, :, :nq] = True
        blocks = [(i * bq, min(n, (i + 1) * bq)) for i in range(nq)]
        image = [i for i, (a, e) in enumerate(blocks) if _overlap(a, e, t0, t1) == 0]
        for h in range(heads):
            r = []
            for i in image:
                a, e = blocks[i]
                x1, x0 = o1[a:e, h].astype(np.float64), o0[a:e, h].astype(np.float64)
                num = _seq_sum(_seq_sum((x1 - x0) ** 2, 0))  # tokens, then columns
                den = _seq_sum(_seq_sum(x0 ** 2, 0))
                r.append(np.sqrt(num) / (np.sqrt(den) + 1e-12))
            total = _seq_sum(np.array(r))
            c = [x / total if total > 0 else 0.0 for x in r]
            order = sorted(range(len(c)), key=lambda x: (c[x], x))
            for m in range(_prefix_within(c, order, threshold)):
                qm[b, h, image[order[m]]] = False
    return qm


@pytest.mark.parametrize("varlen", [False, True])
def test_output_change_symbols_match_the_numpy_model(varlen):
    rng = np.random.default_rng(21)
    lens = [600, 600] if not varlen else [300, 517, 64]
    qs, ks = _random(rng, lens, 4, 32), _random(rng, lens, 2, 32)
    prev = [rng.standard_normal((n, 4, 24)).astype(np.float32) for n in lens]
    now = []
    for p in prev:  # per-64-token change scales, some exactly 0
        scale = np.repeat(rng.choice([0.0, 0.01, 0.3, 1.0], (-(-p.shape[0] // 64), 4)), 64, 0)
        now.append((p + scale[:p.shape[0], :, None] * rng.standard_normal(p.shape))
                   .astype(np.float32))
    text = [(0, 50)]
    kw = dict(text=text, step=30, block_q=64, block_kv=64, tau_q=0.9,
              query_score="output_change")
    if varlen:
        cu = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
        cat = np.concatenate
        s = fo.run_policy(cat(qs), cat(ks), out_now=cat(now), out_prev=cat(prev),
                          cu_seqlens_q=cu, cu_seqlens_kv=cu, **kw)
    else:
        s = fo.run_policy(np.stack(qs), np.stack(ks), out_now=np.stack(now),
                          out_prev=np.stack(prev), **kw)
    want = reference_output_change(now, prev, lens, 64, text * len(lens), 30, tau_q=0.9)
    got_q, _ = s.to_masks()
    np.testing.assert_array_equal(got_q, want)
    assert not got_q.all() and got_q[:, :, 0].all()  # some blocks cached, text never


def test_output_change_first_update_and_errors():
    rng = np.random.default_rng(5)
    q = np.stack(_random(rng, [256], 2, 16))
    out = rng.standard_normal((1, 256, 2, 16)).astype(np.float32)
    kw = dict(step=40, block_q=64, block_kv=64, text=(0, 64))
    first = fo.run_policy(q, q, query_score="output_change", out_now=out, **kw)
    assert first.density()["query"]["overall"] == 1.0  # no previous output: nothing cached
    same = fo.run_policy(q, q, query_score="output_change", out_now=out, out_prev=out, **kw)
    got_q, _ = same.to_masks()
    assert got_q[0, :, 0].all() and not got_q[0, :, 1:].any()  # unchanged image blocks cached
    with pytest.raises(ValueError) as info:
        fo.run_policy(q, q, query_score="output_change", **kw)
    assert "'out_now'" in str(info.value)
    with pytest.raises(ValueError) as info:
        fo.run_policy(q, q, query_score="attention", **kw)
    assert "'query_score'" in str(info.value)
    with pytest.raises(ValueError) as info:
        fo.run_policy(q, q, query_score="output_change", out_now=out, out_prev=out[:, :128], **kw)
    assert "'out_prev'" in str(info.value)


def test_policy_args_of_abi_2_still_run_the_text_image_score():
    rng = np.random.default_rng(9)
    q = np.stack(_random(rng, [256], 2, 16))
    want, _ = fo.run_policy(q, q, step=40, block_q=64, block_kv=64, text=(0, 64)).to_masks()
    args = _lib.PolicyArgs()
    args.struct_size = _lib.PolicyArgs.query_score.offset  # an ABI-2 caller's sizeof
    _lib.call("flashomni_policy_default_args", ctypes.byref(args))
    args.step, args.block_q, args.block_kv = 40, 64, 64
    args.query_score = 1  # beyond struct_size: must be ignored
    qv = fo._arrays.view(q, "q")
    text = np.array([[0, 64]], np.int32)
    args.q, args.k = qv.c(), qv.c()
    args.text = fo._arrays.c_tensor(fo._arrays.view(text, "text"))
    q_bits = np.zeros((1, 2, 1), np.uint32)
    kv_bits = np.zeros((1, 2, 4, 1), np.uint32)
    args.q_bits, args.q_words = q_bits.ctypes.data, q_bits.size
    args.kv_bits, args.kv_words = kv_bits.ctypes.data, kv_bits.size
    _lib.call("flashomni_run_policy", ctypes.byref(args), None, 0, None)
    got = (q_bits[:, :, 0, None] >> np.arange(4, dtype=np.uint32)) & 1
    np.testing.assert_array_equal(got.astype(bool), want)


def test_mismatched_kv_batch_and_heads_are_rejected():
    q = np.zeros((1, 128, 4, 16), np.float32)
    with pytest.raises(ValueError, match="'k'"):
        fo.run_policy(q, np.zeros((2, 128, 4, 16), np.float32), step=1)
    with pytest.raises(ValueError, match="'k'"):
        fo.run_policy(q, np.zeros((1, 128, 3, 16), np.float32), step=1)


# ---- forecast ----------------------------------------------------------------------------------

def _lagrange(steps, s):
    w = []
    for p, tp in enumerate(steps):
        v = 1.0
        for m, tm in enumerate(steps):
            if m != p:
                v *= (s - tm) / (tp - tm)
        w.append(v)
    return w


@pytest.mark.parametrize("order", [0, 1, 2])
def test_forecast_uses_the_last_order_plus_one_points(order):
    rng = np.random.default_rng(order)
    hist = [rng.standard_normal((3, 5, 7)).astype(np.float32) for _ in range(3)]
    steps = [7, 12, 17]
    out = fo.forecast(hist, steps, 19, order)
    used = order + 1
    w = _lagrange(steps[-used:], 19)
    expect = sum(wp * h.astype(np.float64) for wp, h in zip(w, hist[-used:]))
    np.testing.assert_array_equal(out, expect.astype(np.float32))


def test_forecast_reproduces_a_quadratic_in_the_step_and_clips_the_order_to_the_points():
    # Dyadic values and weights (27/16, -11/4, 33/16 at step 11): every operation is exact, even
    # through the fp32 the forecast stores.
    t = np.arange(-8, 8) / 8.0
    value = lambda s: (0.5 + 0.25 * s * t - 0.125 * s * s * t * t)  # noqa: E731
    hist = [value(s) for s in (0, 2, 8)]
    np.testing.assert_array_equal(fo.forecast(hist, [0, 2, 8], 11, 2), value(11))
    # Two points with order 2: a line through them (the degree is min(order, points - 1)).
    line = fo.forecast(hist[1:], [2, 8], 11, 2)
    np.testing.assert_array_equal(line, hist[2] + (hist[2] - hist[1]) * 0.5)


def test_forecast_bf16_and_strided_inputs():
    rng = np.random.default_rng(4)
    base = [rng.standard_normal((8, 6)).astype(np.float32) for _ in range(2)]
    bits = [to_bf16_bits(b) for b in base]
    out = fo.forecast(bits, [3, 4], 6, 1, dtype="bfloat16")
    assert out.dtype == np.uint16
    vals = [(b.astype(np.uint32) << 16).view(np.float32).astype(np.float64) for b in bits]
    expect = to_bf16_bits((-2.0 * vals[0] + 3.0 * vals[1]).astype(np.float32))
    np.testing.assert_array_equal(out, expect)
    strided = [b[:, ::2] for b in base]  # CPU forecast honours strides
    got = fo.forecast(strided, [3, 4], 6, 1)
    wide = [x.astype(np.float64) for x in strided]
    np.testing.assert_array_equal(got, (-2.0 * wide[0] + 3.0 * wide[1]).astype(np.float32))


@pytest.mark.parametrize(
    "call,name",
    [
        (lambda h: fo.forecast(h, [5, 5], 7), "'steps'"),
        (lambda h: fo.forecast(h, [5, 3], 7), "'steps'"),
        (lambda h: fo.forecast(h, [1, 2], 7, order=3), "'order'"),
        (lambda h: fo.forecast([h[0], h[1][:2]], [1, 2], 7), "'history[1]'"),
        (lambda h: fo.forecast(h, [1, 2], 7, out=np.zeros(3, np.float32)), "'out'"),
        (lambda h: fo.forecast(h * 2, [1, 2, 3, 4], 7), "'history'"),
        (lambda h: fo.forecast([h[0].astype(np.int32)], [1], 7), "'history[0]'"),
    ],
)
def test_forecast_errors_name_the_argument(call, name):
    h = [np.ones((4, 4), np.float32), np.ones((4, 4), np.float32)]
    with pytest.raises(ValueError) as info:
        call(h)
    assert name in str(info.value)
