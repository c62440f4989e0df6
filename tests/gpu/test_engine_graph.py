"""FlashOmni GPU tests: one dispatch step of the PyTorch Update–Dispatch engine (flashomni.engine)
in a FLUX-style double-stream layer, captured in a torch.cuda.CUDAGraph and replayed.

The layer (bf16, 2 heads x 128 head dim, 128 text + 384 image tokens = 4 query blocks of 128,
text first): a torch twin of FluxDoubleProcessor, and (when diffusers is importable) the real
diffusers FluxAttention with flashomni.diffusers.FluxDoubleProcessor. Two engines run the same
steps on the same inputs: engine A eagerly, engine B eagerly until the first dispatch step (its
warm-up, on a side stream as the torch CUDA-graph docs require), then step 3 is captured and
replayed with that step's inputs copied into the static input buffers. The replay must equal A's
eager step 3 (the same kernels on the same data; tolerance of one bf16 rounding in case a
library picks another algorithm under capture; the bitwise result is printed). A's dispatch
steps run under torch.cuda.set_sync_debug_mode("error") (no torch-side host sync); a sync
inside libflashomni would make the capture itself fail (synchronising a capturing stream is an
error).

What the graph bakes in (engine design, not a bug): the forecast's Lagrange weights of the
captured step index, the symbols' word pointers and the dense-Q choice of the last update. A
graph is therefore valid for one dispatch step index until the next update; a deployment would
capture one graph per dispatch step of an interval, or re-capture after each update.

Run (GPU machine, library built with CUDA):
  FLASHOMNI_LIBRARY=$PWD/build/libflashomni.so PYTHONPATH=python \
      python3 -m pytest -q -s tests/gpu/test_engine_graph.py
Skipped without a CUDA GPU with FlashOmni's kernels; the diffusers case without diffusers.
"""

import numpy as np
import pytest

from cuda_env import require_cuda

torch, fo = require_cuda()

from flashomni import engine as fe  # noqa: E402

HEADS, HEAD_DIM, DIM, BLOCK = 2, 128, 256, 128
N_TXT, N_IMG = 128, 384  # query blocks: 0 text, 1..3 image
STEPS = 8  # warm-up 2, interval 3: updates 0, 1, 4, 7; dispatches 2, 3, 5, 6
WARM, CAPTURED = 2, 3
Q_MASK = [[[1, 0, 1, 1], [1, 1, 0, 0]]]  # query density 5/8
KV_MASK = np.ones((1, HEADS, 4, 4), dtype=bool)
KV_MASK[0, 0, 2, 1] = KV_MASK[0, 1, 1, 3] = KV_MASK[0, 0, 3, 0] = False  # some key blocks skipped


class MaskPolicy:
    def __call__(self, q, k, *, step, num_steps, text, block_q, block_kv, config):
        assert tuple(text) == (0, N_TXT)
        return fo.Symbols.from_masks(np.array(Q_MASK, dtype=bool), KV_MASK, seqlen_q=q.shape[1],
                                     seqlen_kv=k.shape[1], block_q=block_q,
                                     block_kv=block_kv).to(q.device)


class TinyDouble(torch.nn.Module):
    """FLUX double-stream attention: separate text / image projections, RMS-normed q and k,
    joint attention over [text | image], separate output projections."""

    def __init__(self):
        super().__init__()
        lin = lambda: torch.nn.Linear(DIM, HEADS * HEAD_DIM)  # noqa: E731
        self.to_q, self.to_k, self.to_v = lin(), lin(), lin()
        self.add_q_proj, self.add_k_proj, self.add_v_proj = lin(), lin(), lin()
        self.norm_q, self.norm_k, self.norm_added_q, self.norm_added_k = (
            torch.nn.RMSNorm(HEAD_DIM, eps=1e-6) for _ in range(4))
        self.to_out = torch.nn.Linear(HEADS * HEAD_DIM, DIM)
        self.to_add_out = torch.nn.Linear(HEADS * HEAD_DIM, DIM)

    def step(self, layer, img, txt):
        split = lambda t: t.unflatten(-1, (HEADS, HEAD_DIM))  # noqa: E731
        assert layer.begin() != fe.StepKind.REUSE  # reuse_below = 0: never
        q_img = layer.project_q(img, self.to_q, heads=HEADS, row_offset=N_TXT)
        q_txt = layer.project_q(txt, self.add_q_proj, heads=HEADS)
        q = torch.cat([self.norm_added_q(split(q_txt)), self.norm_q(split(q_img))], dim=1)
        k = torch.cat([self.norm_added_k(split(self.add_k_proj(txt))),
                       self.norm_k(split(self.to_k(img)))], dim=1)
        v = torch.cat([split(self.add_v_proj(txt)), split(self.to_v(img))], dim=1)
        o = layer.attention(q, k, v, text=(0, N_TXT)).flatten(2)
        out_img = layer.project_o("img", o[:, N_TXT:], self.to_out, heads=HEADS,
                                  head_dim=HEAD_DIM, row_offset=N_TXT)
        out_txt = layer.project_o("txt", o[:, :N_TXT], self.to_add_out, heads=HEADS,
                                  head_dim=HEAD_DIM)
        return out_img, out_txt


def tiny_model():
    torch.manual_seed(0)
    m = TinyDouble().to("cuda", torch.bfloat16).eval()

    def bind(layer):
        return lambda img, txt: m.step(layer, img, txt)

    return bind


def diffusers_model():
    pytest.importorskip("diffusers")
    from diffusers.models.transformers.transformer_flux import FluxAttention

    from flashomni import diffusers as fod

    torch.manual_seed(0)
    attn = FluxAttention(query_dim=DIM, heads=HEADS, dim_head=HEAD_DIM, bias=True,
                         added_kv_proj_dim=DIM, eps=1e-6).to("cuda", torch.bfloat16).eval()

    def bind(layer):
        processor = fod.FluxDoubleProcessor(layer)

        def run(img, txt):
            attn.set_processor(processor)  # the engine A / engine B processor in turn
            return attn(img, encoder_hidden_states=txt)

        return run

    return bind


def inputs():
    """Per-step (image, text) activations drifting smoothly with the step, bf16 on the GPU."""
    g = torch.Generator(device="cuda").manual_seed(1)
    base = [torch.randn(1, n, DIM, device="cuda", generator=g) for n in (N_IMG, N_TXT)]
    drift = [torch.randn(1, n, DIM, device="cuda", generator=g) for n in (N_IMG, N_TXT)]
    return [tuple((b + 0.05 * s * d).to(torch.bfloat16) for b, d in zip(base, drift))
            for s in range(STEPS)]


def make_engine(policy, dense_q_above):
    cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=STEPS, warmup=2, interval=3),
                          block_q=BLOCK, block_kv=BLOCK, reuse_below=0.0,
                          dense_q_above=dense_q_above)
    return fe.FlashOmniEngine(cfg, policy_fn=policy)


@pytest.mark.parametrize("model, policy, dense_q_above", [
    ("tiny", "mask", 1.0),  # gemm_q at the dispatch steps
    ("tiny", "mask", 0.5),  # cuBLAS Q (density 5/8 > 0.5)
    ("tiny", "flashomni", 1.0),  # symbols from the GPU policy kernels (all active at step 1)
    ("diffusers", "mask", 1.0),
])
def test_dispatch_step_captures_in_a_cuda_graph_without_host_sync(model, policy, dense_q_above):
    bind = {"tiny": tiny_model, "diffusers": diffusers_model}[model]()
    policy_fn = MaskPolicy() if policy == "mask" else None
    xs = inputs()
    eng_a, eng_b = make_engine(policy_fn, dense_q_above), make_engine(policy_fn, dense_q_above)
    run_a, run_b = bind(eng_a.layer("l0")), bind(eng_b.layer("l0"))
    outs_a = {}
    with torch.no_grad():
        for s in range(CAPTURED + 1):
            eng_a.set_step(s)
            if eng_a.schedule.step_kind(s) == fe.StepKind.DISPATCH:
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")  # any torch-side host sync raises
                try:
                    outs_a[s] = run_a(*xs[s])
                finally:
                    torch.cuda.set_sync_debug_mode(0)
            else:
                outs_a[s] = run_a(*xs[s])
        layer_a = eng_a.layer("l0")
        kinds = [r.kind for r in layer_a.reports]
        assert kinds == [fe.StepKind.UPDATE] * 2 + [fe.StepKind.DISPATCH] * 2, kinds
        if policy == "mask":
            assert layer_a.reports[CAPTURED].query_density == pytest.approx(5 / 8)
            assert layer_a.reports[CAPTURED].dense_q == (dense_q_above < 5 / 8)

        for s in range(WARM):
            eng_b.set_step(s)
            run_b(*xs[s])
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: the first dispatch step, eagerly
            eng_b.set_step(WARM)
            warm = run_b(*xs[WARM])
        torch.cuda.current_stream().wait_stream(side)
        warm_bitwise = all(torch.equal(g, w) for g, w in zip(warm, outs_a[WARM]))
        for got, want in zip(warm, outs_a[WARM]):  # eager on a side stream: same state as A
            torch.testing.assert_close(got, want, rtol=2 ** -7, atol=2 ** -7)

        static_in = [torch.zeros_like(t) for t in xs[CAPTURED]]
        graph = torch.cuda.CUDAGraph()
        eng_b.set_step(CAPTURED)
        with torch.cuda.graph(graph):
            static_out = run_b(*static_in)
        assert eng_b.layer("l0").reports[-1].kind == fe.StepKind.DISPATCH
        for buf, t in zip(static_in, xs[CAPTURED]):
            buf.copy_(t)
        graph.replay()
        torch.cuda.synchronize()
        bitwise = all(torch.equal(g, w) for g, w in zip(static_out, outs_a[CAPTURED]))
        worst = max((g.float() - w.float()).abs().max().item()
                    for g, w in zip(static_out, outs_a[CAPTURED]))
        print(f"\n[{model}/{policy}/dense_q_above={dense_q_above}] replay vs eager step "
              f"{CAPTURED}: bitwise={bitwise} max|diff|={worst:.3g}; side-stream warm-up "
              f"step {WARM} vs eager: bitwise={warm_bitwise}")
        for got, want in zip(static_out, outs_a[CAPTURED]):
            assert torch.isfinite(got.float()).all()
            # bf16 outputs: 2^-8 relative is one rounding; the eager result is the reference.
            torch.testing.assert_close(got, want, rtol=2 ** -7, atol=2 ** -7)

        # The graph reads its input buffers: other inputs give another result.
        for buf in static_in:
            buf.mul_(0.5)
        graph.replay()
        torch.cuda.synchronize()
        assert not torch.equal(static_out[0], outs_a[CAPTURED][0])


def test_first_dispatch_after_an_update_captures_after_resolve_density():
    """The density of an update is read at the layer's next begin() (a host wait on a finished
    copy). Capturing that step without reading it first is refused with a message naming
    engine.resolve_density(); after it, the step captures and its replay equals the eager one.
    (Engine A's eager run launches every kernel first: no first-launch set-up in the capture.)"""
    bind = tiny_model()
    xs = inputs()
    eng_a, eng_b = make_engine(MaskPolicy(), 1.0), make_engine(MaskPolicy(), 1.0)
    run_a, run_b = bind(eng_a.layer("l0")), bind(eng_b.layer("l0"))
    with torch.no_grad():
        for s in range(WARM + 1):
            eng_a.set_step(s)
            want = run_a(*xs[s])
        for s in range(WARM):
            eng_b.set_step(s)
            run_b(*xs[s])
        eng_b.set_step(WARM)
        layer_b = eng_b.layer("l0")
        assert layer_b._pending is not None  # GPU symbols: read at the next begin()
        static_in = [torch.zeros_like(t) for t in xs[WARM]]
        refused = torch.cuda.CUDAGraph()
        with pytest.raises(RuntimeError, match="resolve_density"):
            with torch.cuda.graph(refused):
                run_b(*static_in)  # begin() raises before any work: the step is not taken
        eng_b.resolve_density()
        assert layer_b._pending is None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = run_b(*static_in)
        for buf, t in zip(static_in, xs[WARM]):
            buf.copy_(t)
        graph.replay()
        torch.cuda.synchronize()
        for got, ref in zip(static_out, want):
            torch.testing.assert_close(got, ref, rtol=2 ** -7, atol=2 ** -7)
