"""FlashOmni Python tests: the PyTorch Update–Dispatch engine (flashomni.engine) on the CPU
backend — schedule and forecast weights as in the C++ engine, dense update steps, sparse
dispatch steps whose cached (block, head) tiles hold the Taylor forecast, key-block skipping,
whole-layer reuse, extra always-active GEMM-O columns, and argument errors. Skipped without
torch."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import flashomni as fo  # noqa: E402
from flashomni import engine as fe  # noqa: E402

BLOCK, HEADS, HEAD_DIM, DIM = 32, 2, 16, 24
N_TXT, N = 32, 128  # text block 0, image blocks 1..3


def test_schedule_matches_the_cpp_defaults():
    s = fe.Schedule()
    assert s.update_steps() == list(range(8)) + list(range(12, 48, 5)) + [49]
    assert s.num_updates() == 17
    s = fe.Schedule(fe.ScheduleConfig(num_steps=10, warmup=0, interval=3, last_dense=False))
    assert s.update_steps() == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="'step'"):
        s.step_kind(10)
    with pytest.raises(ValueError, match="'schedule.interval'"):
        fe.Schedule(fe.ScheduleConfig(interval=0))


def test_taylor_weights_are_the_cpp_lagrange_weights():
    np.testing.assert_allclose(fe.taylor_weights([7, 12, 17], 18), [0.12, -0.44, 1.32])
    np.testing.assert_allclose(fe.taylor_weights([7, 12, 17], 21), [0.72, -2.24, 2.52])
    np.testing.assert_allclose(fe.taylor_weights([7, 12, 17], 19), [0.28, -0.96, 1.68])
    assert fe.taylor_weights([4], 9) == [1.0]
    poly = lambda s: 3.0 - 0.5 * s + 0.25 * s * s  # noqa: E731 - degree 2: reproduced exactly
    w = fe.taylor_weights([1, 3, 8], 11)
    assert abs(sum(wi * poly(t) for wi, t in zip(w, [1, 3, 8])) - poly(11)) < 1e-12
    with pytest.raises(ValueError, match="'point_steps'"):
        fe.taylor_weights([3, 3], 5)


class TinyLayer(torch.nn.Module):
    """One joint-attention layer: text tokens first, optional extra always-active columns
    (like FLUX single-stream's MLP branch) in the output projection."""

    def __init__(self, extra=0, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        inner = HEADS * HEAD_DIM
        self.to_q, self.to_k, self.to_v = (torch.nn.Linear(DIM, inner) for _ in range(3))
        self.to_mlp = torch.nn.Linear(DIM, extra) if extra else None
        self.to_out = torch.nn.Linear(inner + extra, DIM)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.3

    def qkv(self, x):
        split = lambda t: t.unflatten(-1, (HEADS, HEAD_DIM))  # noqa: E731
        return split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))

    def dense_attention(self, x):
        q, k, v = self.qkv(x)
        return torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2).flatten(2)

    def extra(self, x):
        return [] if self.to_mlp is None else [torch.tanh(self.to_mlp(x))]

    def stock(self, x, a=None):
        a = self.dense_attention(x) if a is None else a
        return self.to_out(torch.cat([a] + self.extra(x), dim=-1))

    def flashomni(self, layer, x):
        kind = layer.begin()
        extra = self.extra(x)
        if kind == fe.StepKind.REUSE:
            a = torch.zeros(x.shape[0], x.shape[1], HEADS * HEAD_DIM) if extra else None
        else:
            q = layer.project_q(x, self.to_q, heads=HEADS).unflatten(-1, (HEADS, HEAD_DIM))
            _, k, v = self.qkv(x)
            a = layer.attention(q, k, v, text=(0, N_TXT)).flatten(2)
        a = torch.cat([a] + extra, dim=-1) if extra else a
        return layer.project_o("out", a, self.to_out, heads=HEADS, head_dim=HEAD_DIM)


def inputs(steps, seed=1):
    """Activations drifting smoothly (quadratically) with the step, as in a sampler."""
    g = torch.Generator().manual_seed(seed)
    x0, x1, x2 = (torch.randn(1, N, DIM, generator=g) for _ in range(3))
    return [x0 + 0.1 * s * x1 + 0.01 * s * s * x2 for s in range(steps)]


class MaskPolicy:
    """A fixed test policy: q_mask [1, H, nQ] / kv_mask [1, H, nQ, nK] (True = compute / keep);
    records the steps it ran at."""

    def __init__(self, q_mask, kv_mask=None):
        self.q_mask = np.asarray(q_mask, dtype=bool)
        nq = self.q_mask.shape[-1]
        self.kv_mask = (np.ones(self.q_mask.shape + (nq,), dtype=bool) if kv_mask is None else
                        np.asarray(kv_mask, dtype=bool))
        self.steps = []

    def __call__(self, q, k, *, step, num_steps, text, block_q, block_kv, config):
        assert text == (0, N_TXT) and num_steps > step
        self.steps.append(step)
        return fo.Symbols.from_masks(self.q_mask, self.kv_mask, seqlen_q=q.shape[1],
                                     seqlen_kv=k.shape[1], block_q=block_q, block_kv=block_kv)


def make_engine(policy, steps=8, order=2, reuse_below=0.0, **kw):
    cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=steps, warmup=2, interval=2),
                          taylor_order=order, reuse_below=reuse_below, block_q=BLOCK,
                          block_kv=BLOCK, **kw)
    return fe.FlashOmniEngine(cfg, policy_fn=policy)


def mixed(fresh, history, step, points, q_mask):
    """fresh [1, N, H*d] with cached (block, head) tiles replaced by the forecast from the
    attention outputs of `points` (update steps)."""
    w = fe.taylor_weights(points, step)
    forecast = sum(wi * history[t] for wi, t in zip(w, points))
    out = fresh.clone()
    for h in range(HEADS):
        for i in range(q_mask.shape[-1]):
            if not q_mask[0, h, i]:
                rows, cols = slice(i * BLOCK, (i + 1) * BLOCK), slice(h * HEAD_DIM,
                                                                       (h + 1) * HEAD_DIM)
                out[:, rows, cols] = forecast[:, rows, cols]
    return out


Q_MASK = [[[1, 0, 1, 1], [1, 1, 0, 0]]]  # text block 0 active; 3 image tiles cached


@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("extra", [0, 40])
@pytest.mark.parametrize("backend", ["torch", "flashomni"])
def test_cached_tiles_hold_the_forecast_and_active_tiles_are_fresh(order, extra, backend):
    m = TinyLayer(extra=extra)
    xs = inputs(8)
    policy = MaskPolicy(Q_MASK)
    engine = make_engine(policy, order=order, update_backend=backend)
    layer = engine.layer("l0")
    updates = engine.schedule.update_steps()  # 0, 1, 3, 5, 7
    history = {}
    with torch.no_grad():
        for s, x in enumerate(xs):
            engine.set_step(s)
            y = m.flashomni(layer, x)
            fresh = m.dense_attention(x)
            if s in updates:
                history[s] = fresh
                expect = m.stock(x)
            else:
                before = [t for t in updates if t < s]
                points = before[-(min(order, len(before) - 1) + 1):]
                assert layer.reports[-1].forecast_points == len(points)
                expect = m.stock(x, mixed(fresh, history, s, points, np.array(Q_MASK)))
            torch.testing.assert_close(y, expect, rtol=1e-5, atol=1e-5)
    assert policy.steps == [1, 3, 5]  # updates followed by a dispatch
    assert [r.kind for r in layer.reports] == [fe.StepKind.UPDATE] * 2 + [
        fe.StepKind.DISPATCH, fe.StepKind.UPDATE] * 3
    assert layer.reports[2].query_density == pytest.approx(5 / 8)


@pytest.mark.parametrize("dtype,cache_dtype", [(torch.float32, torch.float32),
                                               (torch.bfloat16, torch.bfloat16),
                                               (torch.bfloat16, torch.float32)])
def test_update_recomputes_older_points_cache_only(dtype, cache_dtype, monkeypatch):
    """At an update, older forecast points' C_p come from cache-only gemm_o_update calls (no out,
    no thrown-away Y), bit-equal to the cache of a full update with the same arguments."""
    from flashomni import ops

    m = TinyLayer(extra=40).to(dtype)
    engine = make_engine(MaskPolicy(Q_MASK), cache_dtype=cache_dtype)
    layer = engine.layer("l0")
    calls, real = [], ops.gemm_o_update

    def spy(a, w, b=None, **kw):
        y, cache = real(a, w, b, **kw)
        calls.append((engine.step, kw.get("cache_only", False), y is None))
        if kw.get("cache_only"):
            full_kw = dict(kw, cache_only=False)
            _, full = real(a, w, b, **full_kw)
            assert torch.equal(cache, full)
            assert cache.dtype == cache_dtype and a.shape[-1] == HEADS * HEAD_DIM
        return y, cache

    monkeypatch.setattr(ops, "gemm_o_update", spy)
    with torch.no_grad():
        for s, x in enumerate(inputs(8)):
            engine.set_step(s)
            m.flashomni(layer, x.to(dtype))
    # Policy updates 1, 3, 5 (torch backend: gemm_o_update only where a cache is needed): one
    # full call each, then one cache-only call per older point (steps 0; 0, 1; 1, 3).
    assert calls == [(1, False, False), (1, True, True), (3, False, False), (3, True, True),
                     (3, True, True), (5, False, False), (5, True, True), (5, True, True)]


def test_key_block_skipping_reaches_the_attention():
    m = TinyLayer()
    xs = inputs(3)
    kv = np.ones((1, HEADS, 4, 4), dtype=bool)
    kv[0, 0, 2, 1] = kv[0, 1, 3, 0] = kv[0, 1, 1, 3] = False
    engine = make_engine(MaskPolicy(np.ones((1, HEADS, 4)), kv), steps=4)  # 2 is a dispatch
    layer = engine.layer("l0")
    with torch.no_grad():
        for s, x in enumerate(xs):
            engine.set_step(s)
            y = m.flashomni(layer, x)
    token_mask = torch.from_numpy(kv[0]).repeat_interleave(BLOCK, 1).repeat_interleave(BLOCK, 2)
    q, k, v = m.qkv(xs[2])
    a = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
        attn_mask=token_mask[None]).transpose(1, 2).flatten(2)
    torch.testing.assert_close(y, m.stock(xs[2], a), rtol=1e-5, atol=1e-5)
    assert layer.reports[2].kv_density == pytest.approx(29 / 32)


@pytest.mark.parametrize("extra", [0, 40])
def test_low_query_density_switches_to_whole_layer_reuse(extra, monkeypatch):
    m = TinyLayer(extra=extra)
    policy = MaskPolicy([[[1, 0, 0, 0], [1, 0, 0, 0]]])  # density 0.25 < 0.3
    engine = make_engine(policy, reuse_below=0.3)
    layer = engine.layer("l0")
    attention_steps, density_steps = [], []
    real_attention, real_density = layer.attention, fo.Symbols.density
    monkeypatch.setattr(layer, "attention", lambda *a, **k: attention_steps.append(
        engine.step) or real_attention(*a, **k))
    monkeypatch.setattr(fo.Symbols, "density", lambda self: density_steps.append(
        engine.step) or real_density(self))
    history = {}
    with torch.no_grad():
        for s, x in enumerate(inputs(8)):
            engine.set_step(s)
            y = m.flashomni(layer, x)
            fresh = m.dense_attention(x)
            if engine.schedule.step_kind(s) == fe.StepKind.UPDATE:
                history[s] = fresh
                torch.testing.assert_close(y, m.stock(x), rtol=1e-5, atol=1e-5)
                continue
            points = [t for t in history if t < s][-3:]
            all_cached = np.zeros((1, HEADS, 4), dtype=bool)
            expect = m.stock(x, mixed(fresh, history, s, points, all_cached))
            torch.testing.assert_close(y, expect, rtol=1e-5, atol=1e-5)
    assert [r.kind for r in layer.reports].count(fe.StepKind.REUSE) == 3
    assert all(r.query_density == 0.0 for r in layer.reports if r.kind == fe.StepKind.REUSE)
    assert attention_steps == engine.schedule.update_steps()  # no attention when reusing
    assert density_steps == [1, 3, 5]  # densities read at update steps only


def test_all_active_symbols_equal_dense_at_every_step():
    m = TinyLayer(extra=40)
    engine = make_engine(MaskPolicy(np.ones((1, HEADS, 4))))
    layer = engine.layer("l0")
    with torch.no_grad():
        for s, x in enumerate(inputs(8)):
            engine.set_step(s)
            torch.testing.assert_close(m.flashomni(layer, x), m.stock(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("extra", [0, 40])
def test_dense_q_follows_the_density_and_leaves_outputs_unchanged(extra, monkeypatch):
    """Q_MASK has query density 5/8: above dense_q_above = 0.5 the dispatch steps project Q with
    F.linear over all rows, at 0.75 with gemm_q; the active rows of Q and every output agree."""
    m = TinyLayer(extra=extra)
    xs = inputs(8)
    gemm_q_steps = {}
    real_gemm_q = fe.ops.gemm_q
    runs = {}
    for above in (0.5, 0.75):
        engine = make_engine(MaskPolicy(Q_MASK), dense_q_above=above)
        layer = engine.layer("l0")
        steps, qs = gemm_q_steps.setdefault(above, []), {}
        monkeypatch.setattr(fe.ops, "gemm_q", lambda *a, _s=steps, _e=engine, **k: _s.append(
            _e.step) or real_gemm_q(*a, **k))
        real_project_q = layer.project_q
        monkeypatch.setattr(layer, "project_q", lambda *a, _q=qs, _e=engine, _p=real_project_q,
                            **k: _q.setdefault(_e.step, _p(*a, **k)))
        with torch.no_grad():
            runs[above] = (layer, qs, [(engine.set_step(s), m.flashomni(layer, x))[1]
                                       for s, x in enumerate(xs)])
    dispatches = [2, 4, 6]
    dense, sparse = runs[0.5], runs[0.75]
    assert [r.step for r in dense[0].reports if r.kind == fe.StepKind.DISPATCH] == dispatches
    assert [r.step for r in dense[0].reports if r.dense_q] == dispatches
    assert not any(r.dense_q for r in sparse[0].reports)
    assert gemm_q_steps[0.5] == [] and gemm_q_steps[0.75] == dispatches
    active = np.array(Q_MASK, dtype=bool)[0]  # [H, nQ]
    for s in dispatches:
        qd = dense[1][s].unflatten(-1, (HEADS, HEAD_DIM))
        qs = sparse[1][s].unflatten(-1, (HEADS, HEAD_DIM))
        for h in range(HEADS):
            for i in range(active.shape[1]):
                rows = slice(i * BLOCK, (i + 1) * BLOCK)
                if active[h, i]:
                    torch.testing.assert_close(qd[:, rows, h], qs[:, rows, h], rtol=1e-5,
                                               atol=1e-5)
                else:  # gemm_q leaves cached rows 0; cuBLAS writes them (never read)
                    assert not qs[:, rows, h].any() and qd[:, rows, h].any()
    for yd, ys in zip(dense[2], sparse[2]):
        torch.testing.assert_close(yd, ys, rtol=1e-5, atol=1e-5)


def test_steps_must_increase_and_reset_starts_over():
    m = TinyLayer()
    engine = make_engine(MaskPolicy(np.ones((1, HEADS, 4))))
    layer = engine.layer("l0")
    x = inputs(1)[0]
    with torch.no_grad():
        m.flashomni(layer, x)
        with pytest.raises(RuntimeError, match="once per step"):
            m.flashomni(layer, x)
        engine.set_step(2)  # a layer that skipped steps starts with an update
        m.flashomni(layer, x)
        assert layer.reports[-1].kind == fe.StepKind.UPDATE
        engine.reset()
        assert engine.step == 0 and layer.reports == []
        m.flashomni(layer, x)


def test_stage_outside_a_step_and_bad_policy_output_are_errors():
    m = TinyLayer()
    engine = make_engine(lambda *a, **k: "not symbols", steps=4)
    layer = engine.layer("l0")
    with pytest.raises(RuntimeError, match="begin"):
        layer.project_q(inputs(1)[0], m.to_q, heads=HEADS)
    with torch.no_grad():
        engine.set_step(1)  # the next step is a dispatch: the policy runs
        with pytest.raises(TypeError, match="policy_fn"):
            m.flashomni(layer, inputs(1)[0])


def test_forecast_is_rounded_once_to_the_forecast_dtype():
    """The forecast a dispatch step reads is stored in forecast_dtype (default: the projection's
    dtype) while the points keep cache_dtype; with bf16 storage the outputs stay within bf16
    rounding of an fp32 forecast's."""
    m = TinyLayer(extra=40).to(torch.bfloat16)
    outs, dtypes = {}, {}
    for forecast_dtype in (None, torch.float32):
        engine = make_engine(MaskPolicy(Q_MASK), cache_dtype=torch.float32,
                             forecast_dtype=forecast_dtype)
        layer = engine.layer("l0")
        with torch.no_grad():
            outs[forecast_dtype] = [m.flashomni(layer, x.to(torch.bfloat16)) for x in
                                    _stepped(engine, inputs(8))]
        dtypes[forecast_dtype] = {key[1] for key in engine.forecast_out}
        kinds = [r.kind for r in layer.reports]
        assert fe.StepKind.DISPATCH in kinds
    assert dtypes == {None: {torch.bfloat16}, torch.float32: {torch.float32}}
    for a, b in zip(outs[None], outs[torch.float32]):
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)


def _stepped(engine, xs):
    for s, x in enumerate(xs):
        engine.set_step(s)
        yield x


@pytest.mark.parametrize("field, value", [("forecast_dtype", torch.int32), ("taylor_order", 3), ("reuse_below", 1.5),
                                          ("dense_q_above", -0.1), ("query_score", "text"),
                                          ("update_backend", "cudnn"), ("block_q", 100),
                                          ("cache_dtype", torch.int32)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"'{field}'"):
        fe.FlashOmniEngine(fe.EngineConfig(**{field: value}))


def test_default_policy_without_flashomni_policy_says_so(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "flashomni.policy", None)  # import fails
    q = torch.zeros(1, N, HEADS, HEAD_DIM)
    with pytest.raises(NotImplementedError, match="run_policy"):
        fe.flashomni_policy(q, q, step=0, num_steps=2, text=None, block_q=BLOCK, block_kv=BLOCK,
                            config=fe.PolicyConfig())


def test_default_policy_is_flashomni_run_policy():
    policy = pytest.importorskip("flashomni.policy")
    m = TinyLayer()
    engine = make_engine(None, steps=4)
    layer = engine.layer("l0")
    xs = inputs(4)
    with torch.no_grad():
        for s, x in enumerate(xs):
            engine.set_step(s)
            m.flashomni(layer, x)
        q, k, _ = m.qkv(xs[1])
    expect = policy.run_policy(q, k, step=1, num_steps=4, text=(0, N_TXT), block_q=BLOCK,
                               block_kv=BLOCK)
    got = layer.symbols
    for a, b in zip(got.to_masks(), expect.to_masks()):
        np.testing.assert_array_equal(a, b)
    assert [r.kind for r in layer.reports][2] == fe.StepKind.DISPATCH


class RecordingPolicy(MaskPolicy):
    """MaskPolicy (all active) that also records the PolicyConfig each layer's update hands it."""

    def __init__(self):
        super().__init__(np.ones((1, HEADS, 4)))
        self.configs = []

    def __call__(self, q, k, *, config, **kw):
        self.configs.append((config.tau_q, config.tau_kv))
        return super().__call__(q, k, config=config, **kw)


@pytest.mark.parametrize("thresholds", [
    {0: (0.0, 0.0), "l1": (0.9, None), 1: (0.1, 0.1)},  # the name entry wins over index 1
    lambda i: [(0.0, 0.0), (0.9, None), None][i],
])
def test_layer_thresholds_override_the_policy_per_layer(thresholds):
    m = TinyLayer()
    policy = RecordingPolicy()
    engine = make_engine(policy, steps=4, layer_thresholds=thresholds)
    layers = [engine.layer(f"l{i}") for i in range(3)]
    engine.config.policy = fe.PolicyConfig(tau_q=0.4, tau_kv=0.2)  # read at each update
    assert [layer.index for layer in layers] == [0, 1, 2]
    with torch.no_grad():
        engine.set_step(1)  # the next step is a dispatch: every layer's policy runs
        for layer in layers:
            m.flashomni(layer, inputs(1)[0])
    # None keeps the global value; layer 2 is not covered.
    assert policy.configs == [(0.0, 0.0), (0.9, 0.2), (0.4, 0.2)]
    assert layers[1].policy.tau_q == 0.9 and engine.config.policy.tau_q == 0.4


def test_two_layers_with_different_thresholds_get_different_densities():
    """The default policy on identical layers and inputs: layer 0 with tau 0 keeps everything
    (tau * phi(s) = 0), layer 1 with tau 1 caches query blocks and skips key blocks, exactly as
    run_policy with those thresholds."""
    policy = pytest.importorskip("flashomni.policy")
    m = TinyLayer()
    engine = make_engine(None, layer_thresholds={0: (0.0, 0.0), 1: (1.0, 1.0)})
    layers = [engine.layer("l0"), engine.layer("l1")]
    xs = inputs(8)
    with torch.no_grad():
        for s, x in enumerate(xs):
            engine.set_step(s)
            for layer in layers:
                m.flashomni(layer, x)
        q, k, _ = m.qkv(xs[5])
    dense, sparse = (layer.reports[6] for layer in layers)  # dispatch 6: symbols of update 5
    assert dense.kind == sparse.kind == fe.StepKind.DISPATCH
    assert dense.query_density == dense.kv_density == 1.0
    assert sparse.query_density < 1.0 and sparse.kv_density < 1.0
    expect = policy.run_policy(q, k, step=5, num_steps=8, text=(0, N_TXT), block_q=BLOCK,
                               block_kv=BLOCK, tau_q=1.0, tau_kv=1.0)
    for a, b in zip(layers[1].symbols.to_masks(), expect.to_masks()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("thresholds, match", [
    ({0: (0.5,)}, r"'layer_thresholds\[0\]'"), ({"l0": (-0.1, 0.1)}, "tau_q"),
    ({0: (0.1, float("nan"))}, "tau_kv"), ({1.5: (0.1, 0.1)}, "'layer_thresholds'"),
    ((0.1, 0.1), "'layer_thresholds'"),
])
def test_layer_threshold_errors_name_the_entry(thresholds, match):
    with pytest.raises(ValueError, match=match):
        fe.FlashOmniEngine(fe.EngineConfig(layer_thresholds=thresholds))


def test_layer_threshold_callable_result_is_checked():
    engine = fe.FlashOmniEngine(fe.EngineConfig(layer_thresholds=lambda i: (0.1, -1.0)))
    with pytest.raises(ValueError, match=r"'layer_thresholds\(0\)'.*tau_kv"):
        engine.layer("l0").policy


# ---- query_score "output_change" ---------------------------------------------------------------
class OutputRecordingPolicy(MaskPolicy):
    """MaskPolicy (all active) that records, per policy run, the step and the output-change
    arguments the engine hands it (clones: what they held at the call)."""

    def __init__(self):
        super().__init__(np.ones((1, HEADS, 4)))
        self.runs = []

    def __call__(self, q, k, *, query_score=None, out_now=None, out_prev=None, **kw):
        self.runs.append((kw["step"], query_score, None if out_now is None else out_now.clone(),
                          None if out_prev is None else out_prev.clone()))
        return super().__call__(q, k, **kw)


def dense_heads(m, x):
    return m.dense_attention(x).unflatten(-1, (HEADS, HEAD_DIM))


def run_layer(engine, m, xs, layer="l0"):
    layer = engine.layer(layer)
    with torch.no_grad():
        for s, x in enumerate(xs):
            engine.set_step(s)
            m.flashomni(layer, x)
    return layer


def test_output_change_hands_this_and_the_previous_updates_attention_outputs():
    """Updates 0, 1, 3, 5, 7; the policy runs at 1, 3, 5 (a dispatch follows) and gets the dense
    attention output of that step as out_now and of the previous update (0, 1, 3: kept also
    where the policy did not run) as out_prev. The text-image default hands neither."""
    m = TinyLayer()
    xs = inputs(8)
    policy = OutputRecordingPolicy()
    run_layer(make_engine(policy, query_score="output_change"), m, xs)
    with torch.no_grad():
        dense = [dense_heads(m, x) for x in xs]
    assert [r[0] for r in policy.runs] == [1, 3, 5]
    for (step, score, now, prev), prev_step in zip(policy.runs, [0, 1, 3]):
        assert score == "output_change"
        torch.testing.assert_close(now, dense[step], rtol=0, atol=1e-6)
        torch.testing.assert_close(prev, dense[prev_step], rtol=0, atol=1e-6)
        assert not torch.allclose(now, prev)  # the inputs drift: the steps are distinct
    plain = OutputRecordingPolicy()
    run_layer(make_engine(plain), m, xs)
    assert [r[1:] for r in plain.runs] == [(None, None, None)] * 3


def test_output_change_symbols_equal_run_policy_on_the_same_outputs():
    """The default policy with the output-change score: the symbols of update 5 are run_policy's
    on q, k of step 5 with out_now = attention(5), out_prev = attention(3); at tau_q 1 query
    blocks are cached (dispatch 6 has query density < 1) and equal the direct call."""
    policy = pytest.importorskip("flashomni.policy")
    m = TinyLayer()
    xs = inputs(8)
    engine = make_engine(None, query_score="output_change")
    engine.config.policy = fe.PolicyConfig(tau_q=1.0, tau_kv=0.15)  # read at each update
    layer = run_layer(engine, m, xs)
    with torch.no_grad():
        q, k, _ = m.qkv(xs[5])
        now, prev = dense_heads(m, xs[5]), dense_heads(m, xs[3])
    expect = policy.run_policy(q, k, step=5, num_steps=8, text=(0, N_TXT), block_q=BLOCK,
                               block_kv=BLOCK, tau_q=1.0, tau_kv=0.15,
                               query_score="output_change", out_now=now, out_prev=prev)
    for a, b in zip(layer.symbols.to_masks(), expect.to_masks()):
        np.testing.assert_array_equal(a, b)
    report = layer.reports[6]
    assert report.kind == fe.StepKind.DISPATCH and report.query_density < 1.0
    assert report.query_density == expect.density()["query"]["overall"]
    # The text-image score on the same layer chooses differently (the outputs matter).
    text_image = policy.run_policy(q, k, step=5, num_steps=8, text=(0, N_TXT), block_q=BLOCK,
                                   block_kv=BLOCK, tau_q=1.0, tau_kv=0.15)
    assert not np.array_equal(text_image.to_masks()[0], expect.to_masks()[0])


def test_output_change_first_update_caches_nothing_and_reset_forgets_the_output():
    """warm-up 1, interval 2: updates 0, 2, 4, 6, 7. A whole generation: the policy at 4 compares
    with update 2 and caches query blocks at tau_q 2 (phi(4) = 1/4). After reset(), a generation
    started at step 4 has no previous output there: its policy caches no query block (and at
    step 0 tau_q * phi(0) = 0 caches nothing either way)."""
    pytest.importorskip("flashomni.policy")
    m = TinyLayer()
    xs = inputs(8)
    cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=8, warmup=1, interval=2),
                          policy=fe.PolicyConfig(tau_q=2.0), block_q=BLOCK, block_kv=BLOCK,
                          query_score="output_change")
    engine = fe.FlashOmniEngine(cfg)
    layer = run_layer(engine, m, xs)
    assert [r.policy_ran for r in layer.reports][:5] == [True, False, True, False, True]
    assert layer.reports[1].query_density == 1.0 and layer.reports[5].query_density < 1.0
    engine.reset()
    with torch.no_grad():
        for s in range(4, 8):
            engine.set_step(s)
            m.flashomni(layer, xs[s])
    assert [r.step for r in layer.reports if r.policy_ran] == [4]
    assert layer.reports[1].step == 5 and layer.reports[1].kind == fe.StepKind.DISPATCH
    assert layer.reports[1].query_density == 1.0
