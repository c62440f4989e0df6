"""FlashOmni Python tests: the PyTorch engine's dense fallback (its cost model and dense dispatch
steps) and its forecast buffer, shared by the layers. Skipped without torch; helpers from
test_engine_torch.py."""

import pytest

torch = pytest.importorskip("torch")

from flashomni import engine as fe  # noqa: E402

from test_engine_torch import BLOCK, Q_MASK, MaskPolicy, TinyLayer, inputs, make_engine  # noqa: E402


def test_dispatch_cost_ratio_follows_shapes_and_densities():
    """The dense-fallback model: at FLUX shapes (4608 tokens, 24 x 128) a dispatch at full
    density costs more than dense (forecast + slower sparse GEMMs), at HunyuanVideo's 33K tokens
    (attention dominates) a dispatch at query / pair density 0.73 / 0.67 costs less; cheaper
    with lower densities, dearer with more forecast points."""
    ratio = lambda n, q, p, pts=3: fe.dispatch_cost_ratio(  # noqa: E731
        tokens=n, heads=24, head_dim=128, query_density=q, pair_density=p, forecast_points=pts,
        dense_q=q > 0.75)
    assert ratio(4608, 1.0, 1.0) > 1.2
    assert ratio(33024, 0.73, 0.67) < 0.85
    assert ratio(33024, 0.5, 0.4) < ratio(33024, 0.73, 0.67) < ratio(33024, 1.0, 1.0)
    assert ratio(33024, 0.73, 0.67, pts=1) < ratio(33024, 0.73, 0.67, pts=3)
    # A 16-bit cache halves the forecast's bytes.
    half = fe.dispatch_cost_ratio(tokens=4608, heads=24, head_dim=128, query_density=0.6,
                                  pair_density=0.6, forecast_points=3, dense_q=False,
                                  cache_bytes=2)
    assert half < ratio(4608, 0.6, 0.6)


@pytest.mark.parametrize("extra", [0, 40])
def test_dense_fallback_runs_dispatch_steps_densely_and_exactly(extra, monkeypatch):
    """At these tiny shapes a dispatch never pays off (the forecast alone streams more bytes
    than the layer computes), so with dense_fallback every dispatch step runs densely: outputs
    equal the stock layer's, no sparse kernel, no cache, no forecast; the reports say so."""
    m = TinyLayer(extra=extra)
    calls = []
    for name in ("gemm_q", "sparse_attention", "gemm_o_dispatch", "gemm_o_update"):
        real = getattr(fe.ops, name)
        monkeypatch.setattr(fe.ops, name, lambda *a, _n=name, _r=real, **k: calls.append(_n)
                            or _r(*a, **k))
    engine = make_engine(MaskPolicy(Q_MASK), dense_fallback=True)
    layer = engine.layer("l0")
    with torch.no_grad():
        for s, x in enumerate(inputs(8)):
            engine.set_step(s)
            torch.testing.assert_close(m.flashomni(layer, x), m.stock(x), rtol=1e-5, atol=1e-5)
    dispatch = [r for r in layer.reports if r.kind == fe.StepKind.DISPATCH]
    assert [r.step for r in dispatch] == [2, 4, 6] and all(r.dense for r in dispatch)
    assert calls == []
    # The default keeps the sparse path: the same run reports sparse dispatches.
    engine = make_engine(MaskPolicy(Q_MASK))
    layer = engine.layer("l0")
    with torch.no_grad():
        for s, x in enumerate(inputs(8)):
            engine.set_step(s)
            m.flashomni(layer, x)
    dispatch = [r for r in layer.reports if r.kind == fe.StepKind.DISPATCH]
    assert len(dispatch) == 3 and not any(r.dense for r in dispatch)
    assert "sparse_attention" in calls and "gemm_o_dispatch" in calls


REUSE_MASK = [[[1, 0, 0, 0], [1, 0, 0, 0]]]  # query density 0.25


@pytest.mark.parametrize("q_mask, reuse_below, order", [
    (Q_MASK, 0.0, 2), (REUSE_MASK, 0.3, 2), (REUSE_MASK, 0.3, 0)])
def test_layers_share_one_forecast_buffer(q_mask, reuse_below, order):
    """Two layers of one shape share the engine's forecast buffer (one [M, N] array less per
    projection): each one's outputs equal, bit for bit, those of the same layer in an engine of
    its own, read after both layers ran, also when the caller then writes into every output (a
    reuse step returns a copy: neither the shared buffer nor, at order 0, the cache itself)."""
    ms = [TinyLayer(seed=0), TinyLayer(seed=1)]

    def engine():  # an update every 3 steps: two dispatch (or reuse) steps in a row
        cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=8, warmup=2, interval=3),
                              taylor_order=order, reuse_below=reuse_below, block_q=BLOCK,
                              block_kv=BLOCK)
        return fe.FlashOmniEngine(cfg, policy_fn=MaskPolicy(q_mask))

    shared, alone = engine(), [engine() for _ in ms]
    kinds = set()
    with torch.no_grad():
        for s, x in enumerate(inputs(8)):
            shared.set_step(s)
            ys = [m.flashomni(shared.layer(f"l{i}"), x) for i, m in enumerate(ms)]
            kinds.update(shared.layer(f"l{i}").kind for i in range(len(ms)))
            for i, m in enumerate(ms):
                alone[i].set_step(s)
                assert torch.equal(ys[i], m.flashomni(alone[i].layer("l0"), x)), (s, i)
                ys[i].mul_(-1.0)
    assert len(shared.forecast_out) == (1 if order else 0)
    assert (fe.StepKind.REUSE if reuse_below else fe.StepKind.DISPATCH) in kinds
