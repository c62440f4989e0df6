"""FlashOmni GPU tests: the engine's deferred density read (flashomni.pending_density).

- PendingDensity on random GPU symbols returns exactly Symbols.density(), decides reuse as the
  host rule (thresholds just below and above the query density, and at both ends), and its
  GEMM symbols carry the all-cached query words when it decides reuse, the chosen ones else;
  the same with one set of pinned buffers reused across the reads, and when a read is dropped
  and the next copies into the buffers run on another stream.
- An update step that runs the GPU policy makes no torch-side host synchronisation (sync debug
  mode "error"): the density is read at the layer's next begin(), and the layer's reports and
  choices there equal those of an engine that reads it at once, with and without the dense
  fallback.
"""

import numpy as np
import pytest

from cuda_env import require_cuda

torch, fo = require_cuda()

from flashomni import engine as fe  # noqa: E402
from flashomni.pending_density import PendingDensity  # noqa: E402

from test_engine_graph import N_IMG, N_TXT, STEPS, inputs, tiny_model  # noqa: E402


def random_symbols(rng, heads, q_blocks, kv_blocks, density):
    q = rng.random((1, heads, q_blocks)) < density
    kv = rng.random((1, heads, q_blocks, kv_blocks)) < 0.6
    kv[..., 0] = True
    return fo.Symbols.from_masks(q, kv, seqlen_q=128 * q_blocks, seqlen_kv=128 * kv_blocks)


@pytest.mark.parametrize("heads, q_blocks, density", [(3, 40, 0.3), (24, 33, 0.7), (2, 5, 0.0)])
def test_pending_density_matches_the_host_read(heads, q_blocks, density):
    rng = np.random.default_rng(heads * 100 + q_blocks)
    host = random_symbols(rng, heads, q_blocks, q_blocks + 3, density)
    gpu = host.to("cuda")
    want = host.density()
    overall = want["query"]["overall"]
    all_cached = fe._all_cached_like(gpu)
    buffers = None
    for reuse_below in (0.0, overall - 1e-3, overall + 1e-3, 1.01):
        p = PendingDensity(gpu, reuse_below, buffers)
        assert buffers is None or p.buffers is buffers
        buffers = p.buffers
        used = p.gemm_symbols(all_cached)
        got, reuse, host_copy = p.read()
        assert got == want
        assert reuse == (overall < reuse_below), (reuse_below, overall)
        assert np.array_equal(host_copy.to_masks()[0], host.to_masks()[0])
        expect_q = all_cached.q_bits if reuse else gpu.q_bits
        assert torch.equal(used.q_bits, expect_q)
        assert torch.equal(used.kv_bits, gpu.kv_bits)


def test_pinned_buffers_after_a_dropped_read_on_another_stream():
    """A generation reset drops a pending read; the next update's copies into the same buffers
    may run on another stream: what is read is the new symbols' words."""
    rng = np.random.default_rng(7)
    first = random_symbols(rng, 4, 30, 31, 0.9).to("cuda")
    second_host = random_symbols(rng, 4, 30, 31, 0.2)
    dropped = PendingDensity(first, 0.5)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        second = second_host.to("cuda")
        p = PendingDensity(second, 0.5, dropped.buffers)
        assert p.buffers is dropped.buffers
        got, reuse, host_copy = p.read()
    assert got == second_host.density()
    assert reuse == (second_host.density()["query"]["overall"] < 0.5)
    assert np.array_equal(host_copy.to_masks()[0], second_host.to_masks()[0])
    assert np.array_equal(host_copy.to_masks()[1], second_host.to_masks()[1])


@pytest.mark.parametrize("dense_fallback", [False, True])
def test_update_step_reads_the_density_at_the_next_step_without_a_sync(dense_fallback,
                                                                        monkeypatch):
    """Deferred (GPU symbols) against immediate reads (PendingDensity.applies patched off):
    the same reports and choices. With the dense fallback these tiny shapes never pay off, so
    both run every dispatch densely; the deferred engine learns that one update later (its
    first policy update still computes caches, its later ones none)."""
    bind = tiny_model()
    xs = inputs()

    def generation(deferred):
        cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=STEPS, warmup=2, interval=3),
                              reuse_below=0.0, dense_fallback=dense_fallback)
        eng = fe.FlashOmniEngine(cfg)  # the GPU reference policy
        layer = eng.layer("l0")
        run = bind(layer)
        caches, pinned = [], set()
        with torch.no_grad():
            for s in range(STEPS):
                eng.set_step(s)
                policy_step = (eng.schedule.step_kind(s) == fe.StepKind.UPDATE
                               and s + 1 < STEPS
                               and eng.schedule.step_kind(s + 1) == fe.StepKind.DISPATCH)
                if deferred and policy_step:
                    torch.cuda.synchronize()
                    torch.cuda.set_sync_debug_mode("error")  # any torch-side host sync raises
                    try:
                        run(*xs[s])
                    finally:
                        torch.cuda.set_sync_debug_mode(0)
                    assert layer._pending is not None and layer.reports[-1].policy_ran
                else:
                    run(*xs[s])
                if policy_step:
                    caches.append(layer._caches)
                    if layer._pinned is not None:
                        pinned.add(id(layer._pinned))
        assert len(pinned) <= 1  # one set of pinned buffers per layer, reused
        return layer, caches

    a, caches_a = generation(True)
    with monkeypatch.context() as m:
        m.setattr(PendingDensity, "applies", staticmethod(lambda symbols: False))
        b, caches_b = generation(False)
    assert a._pending is None  # resolved at the following steps
    assert a.density == b.density and a.reuse == b.reuse and a.dense_q == b.dense_q
    assert a.dense == b.dense == dense_fallback
    for ra, rb in zip(a.reports, b.reports):
        assert (ra.step, ra.kind, ra.query_density, ra.pair_density, ra.dense_q, ra.dense) == (
            rb.step, rb.kind, rb.query_density, rb.pair_density, rb.dense_q, rb.dense)
    assert caches_b == [not dense_fallback] * len(caches_b)
    assert caches_a == [True] + [not dense_fallback] * (len(caches_a) - 1)
    print(f"\n[{N_TXT} + {N_IMG} tokens, dense_fallback={dense_fallback}] kinds "
          f"{[r.kind.name for r in a.reports]}, caches at policy updates {caches_a}")


def test_density_is_read_at_begin_or_by_resolve_density():
    """The pending density survives set_step and is read at the layer's begin(); reading it
    earlier with FlashOmniEngine.resolve_density() (before a graph capture) gives the same
    reports and choices."""
    bind = tiny_model()
    xs = inputs()

    def generation(resolve_all):
        cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=STEPS, warmup=2, interval=3),
                              reuse_below=0.0)
        eng = fe.FlashOmniEngine(cfg)
        layer = eng.layer("l0")
        run = bind(layer)
        pending_after_set_step = 0
        with torch.no_grad():
            for s in range(STEPS):
                if resolve_all:
                    eng.resolve_density()
                    assert layer._pending is None
                eng.set_step(s)
                pending_after_set_step += layer._pending is not None
                run(*xs[s])
        return layer, pending_after_set_step

    at_begin, n_at_begin = generation(False)
    early, n_early = generation(True)
    assert n_early == 0 and n_at_begin > 0
    assert at_begin.density == early.density and at_begin.dense_q == early.dense_q
    assert [(r.step, r.kind, r.query_density, r.pair_density) for r in at_begin.reports] == [
        (r.step, r.kind, r.query_density, r.pair_density) for r in early.reports]
