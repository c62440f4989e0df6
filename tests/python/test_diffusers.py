"""FlashOmni Python tests: the diffusers processors (flashomni.diffusers) in tiny real diffusers
models with random weights — FluxTransformer2DModel (text first; double- and single-stream),
HunyuanVideoTransformer3DModel (text last) and WanTransformer3DModel (self-attention without text,
Q normalised over all heads; cross-attention stock) — on the CPU backend. All symbols active: equal to the
stock processors at every step. Sparse: the model equals a stock run whose output projections
see the cached (block, head) tiles of their input replaced by the Taylor forecast of the stock
attention outputs (so cached rows keep their forecast, active rows are fresh). Skipped without
torch or diffusers."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

import flashomni as fo  # noqa: E402
from diffusers import (FluxTransformer2DModel, HunyuanVideoTransformer3DModel,  # noqa: E402
                       WanTransformer3DModel)
from flashomni import diffusers as fod  # noqa: E402
from flashomni import engine as fe  # noqa: E402

BLOCK, HEADS, HEAD_DIM = 64, 2, 64
STEPS = 8  # warm-up 2, interval 2: updates 0, 1, 3, 5, 7; dispatches 2, 4, 6


class MaskPolicy:
    def __init__(self, q_mask):
        self.q_mask = np.asarray(q_mask, dtype=bool)
        self.calls = []

    def __call__(self, q, k, *, step, num_steps, text, block_q, block_kv, config):
        self.calls.append((step, None if text is None else tuple(text)))
        nq = self.q_mask.shape[-1]
        assert q.shape[1] == k.shape[1] and (q.shape[1] + block_q - 1) // block_q == nq
        kv = np.ones(self.q_mask.shape + (nq,), dtype=bool)
        return fo.Symbols.from_masks(self.q_mask, kv, seqlen_q=q.shape[1], seqlen_kv=k.shape[1],
                                     block_q=block_q, block_kv=block_kv)


def make_engine(policy, order=2, reuse_below=0.0, dense_q_above=0.75):
    cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=STEPS, warmup=2, interval=2),
                          taylor_order=order, reuse_below=reuse_below,
                          dense_q_above=dense_q_above, block_q=BLOCK,
                          block_kv=BLOCK)
    return fe.FlashOmniEngine(cfg, policy_fn=policy)


# ---- tiny models ------------------------------------------------------------------------------
def flux():
    torch.manual_seed(0)
    model = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                   attention_head_dim=HEAD_DIM, num_attention_heads=HEADS,
                                   joint_attention_dim=32, pooled_projection_dim=32,
                                   axes_dims_rope=(16, 24, 24)).eval()
    g = torch.Generator().manual_seed(1)
    side, n_txt = 16, 64  # 256 image + 64 text tokens: blocks 0 (text) .. 4
    x0, x1 = (torch.randn(1, side * side, 16, generator=g) for _ in range(2))
    ctx, pooled = torch.randn(1, n_txt, 32, generator=g), torch.randn(1, 32, generator=g)
    img_ids = torch.zeros(side * side, 3)
    img_ids[:, 1] = torch.arange(side).repeat_interleave(side)
    img_ids[:, 2] = torch.arange(side).repeat(side)

    def forward(s):
        return model(hidden_states=x0 + 0.1 * s * x1, encoder_hidden_states=ctx,
                     pooled_projections=pooled, timestep=torch.tensor([1.0 - s / STEPS]),
                     img_ids=img_ids, txt_ids=torch.zeros(n_txt, 3)).sample

    # Output projections: (module, layer name, first joint token of its rows, total tokens).
    outs = [(model.transformer_blocks[0].attn.to_out[0], "transformer_blocks.0", n_txt),
            (model.transformer_blocks[0].attn.to_add_out, "transformer_blocks.0", 0),
            (model.single_transformer_blocks[0].proj_out, "single_transformer_blocks.0", 0)]
    return model, forward, outs, fod.apply_flux, (0, n_txt)


def hunyuan(mask=None):
    torch.manual_seed(0)
    model = HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=HEADS, attention_head_dim=HEAD_DIM,
        num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=2, patch_size_t=1,
        text_embed_dim=32, pooled_projection_dim=32, rope_axes_dim=(16, 24, 24)).eval()
    g = torch.Generator().manual_seed(1)
    n_vid, n_txt = 2 * 8 * 8, 64  # 128 video tokens then 64 text: blocks 0, 1 video, 2 text
    x0, x1 = (torch.randn(1, 4, 2, 16, 16, generator=g) for _ in range(2))
    ctx, pooled = torch.randn(1, n_txt, 32, generator=g), torch.randn(1, 32, generator=g)
    mask = torch.ones(1, n_txt, dtype=torch.int64) if mask is None else mask

    def forward(s):
        return model(hidden_states=x0 + 0.1 * s * x1, timestep=torch.tensor([1000.0 - 100 * s]),
                     encoder_hidden_states=ctx, encoder_attention_mask=mask,
                     pooled_projections=pooled, guidance=torch.tensor([3500.0])).sample

    outs = [(model.transformer_blocks[0].attn.to_out[0], "transformer_blocks.0", 0),
            (model.transformer_blocks[0].attn.to_add_out, "transformer_blocks.0", n_vid),
            (model.single_transformer_blocks[0].proj_out, "single_transformer_blocks.0", 0)]
    return model, forward, outs, fod.apply_hunyuan_video, (n_vid, n_vid + n_txt)


def wan():
    torch.manual_seed(0)
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=HEADS,
                                  attention_head_dim=HEAD_DIM, in_channels=4, out_channels=4,
                                  text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2).eval()
    g = torch.Generator().manual_seed(1)
    # 4 frames of 8 x 9 patches: 288 video tokens, query blocks 0..3 full, block 4 half (32).
    x0, x1 = (torch.randn(1, 4, 4, 16, 18, generator=g) for _ in range(2))
    ctx = torch.randn(1, 24, 32, generator=g)  # the cross-attention's keys: 24 text tokens

    def forward(s):
        return model(hidden_states=x0 + 0.1 * s * x1, timestep=torch.tensor([1000.0 - 100 * s]),
                     encoder_hidden_states=ctx).sample

    outs = [(b.attn1.to_out[0], f"blocks.{i}", 0) for i, b in enumerate(model.blocks)]
    return model, forward, outs, fod.apply_wan, None


# ---- the reference: stock model, output projections fed the forecast on cached tiles ----------
def expected_run(model, forward, outs, schedule, q_mask, order):
    """Stock forward passes; at dispatch steps each output projection's input has its cached
    (block, head) tiles replaced by the Lagrange forecast of the stock inputs of the last
    update steps (the spec's cached-row semantics, computed without FlashOmni)."""
    history = [dict() for _ in outs]
    state = {"step": 0}
    updates = schedule.update_steps()

    def hook(index, row0):
        def pre(module, args):
            s, a = state["step"], args[0]
            if s in updates:
                history[index][s] = a[..., :HEADS * HEAD_DIM].clone()
                return None
            before = [t for t in updates if t < s]
            points = before[-(min(order, len(before) - 1) + 1):]
            w = fe.taylor_weights(points, s)
            forecast = sum(wi * history[index][t] for wi, t in zip(w, points))
            a = a.clone()
            for h in range(HEADS):
                cols = slice(h * HEAD_DIM, (h + 1) * HEAD_DIM)
                for m in range(a.shape[1]):
                    if not q_mask[0, h, (row0 + m) // BLOCK]:
                        a[:, m, cols] = forecast[:, m, cols]
            return (a,)
        return pre

    handles = [mod.register_forward_pre_hook(hook(i, row0)) for i, (mod, _, row0) in
               enumerate(outs)]
    try:
        return run_steps(model, forward, lambda s: state.update(step=s))
    finally:
        for h in handles:
            h.remove()


def run_steps(model, forward, set_step=lambda s: None):
    """Model outputs and every transformer block's outputs (both streams), per step."""
    results = []
    for s in range(STEPS):
        set_step(s)
        blocks = []
        handles = [b.register_forward_hook(lambda m, args, out: blocks.extend(
            out if isinstance(out, tuple) else (out,))) for b in transformer_blocks(model)]
        try:
            results.append([forward(s)] + blocks)
        finally:
            for h in handles:
                h.remove()
    return results


def transformer_blocks(model):
    """FLUX / HunyuanVideo: double- then single-stream blocks (2 outputs each); Wan: blocks."""
    names = ("transformer_blocks", "single_transformer_blocks", "blocks")
    return [b for name in names for b in getattr(model, name, [])]


def assert_steps_close(got, expect):
    for s, (g, e) in enumerate(zip(got, expect)):
        assert len(g) == len(e) and len(g) in (3, 5)  # model output, every block's outputs
        for gi, ei in zip(g, e):
            torch.testing.assert_close(gi, ei, rtol=1e-4, atol=1e-4,
                                       msg=lambda m, s=s: f"step {s}: {m}")


def flashomni_run(model, forward, apply, engine):
    undo = apply(model, engine)
    try:
        return run_steps(model, forward, engine.set_step)
    finally:
        undo()


MODELS = {"flux": flux, "hunyuan": hunyuan, "wan": wan}
LAYERS = {"flux": ["single_transformer_blocks.0", "transformer_blocks.0"],
          "hunyuan": ["single_transformer_blocks.0", "transformer_blocks.0"],
          "wan": ["blocks.0", "blocks.1"]}
# Per head, 5 (FLUX: text block 0; Wan: no text) or 3 (HunyuanVideo: text block 2) query blocks.
# Wan: blocks 0, 1, 4 active in one head only (GEMM-Q computes both heads: Q's RMS norm spans
# them), block 3 cached in both; query density 1/2, union over heads 4/5.
SPARSE = {"flux": [[[1, 1, 0, 1, 0], [1, 0, 1, 0, 1]]], "hunyuan": [[[0, 1, 1], [1, 0, 1]]],
          "wan": [[[1, 0, 1, 0, 0], [0, 1, 1, 0, 1]]]}


@pytest.mark.parametrize("name", ["flux", "hunyuan", "wan"])
@pytest.mark.parametrize("dense_q_above", [0.75, 1.0])  # Q by cuBLAS / by gemm_q (row offsets)
def test_all_symbols_active_equals_stock_processors(name, dense_q_above):
    model, forward, _, apply, text = MODELS[name]()
    with torch.no_grad():
        stock = run_steps(model, forward)
        nq = len(SPARSE[name][0][0])
        policy = MaskPolicy(np.ones((1, HEADS, nq)))
        engine = make_engine(policy, dense_q_above=dense_q_above)
        got = flashomni_run(model, forward, apply, engine)
    assert_steps_close(got, stock)
    assert sorted(engine.layers) == LAYERS[name]
    assert policy.calls == [(s, text) for s in (1, 3, 5) for _ in range(2)]
    kinds = [r.kind for r in engine.layers[LAYERS[name][1]].reports]
    assert kinds == [fe.StepKind.UPDATE] * 2 + [fe.StepKind.DISPATCH, fe.StepKind.UPDATE] * 3
    for layer in engine.layers.values():
        dense_q = [r.dense_q for r in layer.reports if r.kind == fe.StepKind.DISPATCH]
        assert dense_q == [dense_q_above < 1.0] * 3


@pytest.mark.parametrize("name, dense_q_above", [("flux", 0.75), ("hunyuan", 0.75),
                                                 ("wan", 0.75), ("wan", 1.0)])
@pytest.mark.parametrize("order", [0, 2])
def test_cached_tiles_keep_their_forecast(name, dense_q_above, order):
    model, forward, outs, apply, _ = MODELS[name]()
    q_mask = np.array(SPARSE[name], dtype=bool)
    engine = make_engine(MaskPolicy(q_mask), order=order, dense_q_above=dense_q_above)
    with torch.no_grad():
        got = flashomni_run(model, forward, apply, engine)
        expect = expected_run(model, forward, outs, engine.schedule, q_mask, order)
        stock = run_steps(model, forward)
    assert_steps_close(got, expect)
    # The forecast is not the fresh value: the dispatch steps really differ from dense.
    assert (got[4][0] - stock[4][0]).abs().max() > 1e-3
    if name == "wan":  # dense Q above 0.75: decided by the union over heads (4/5), not 1/2
        assert all(r.dense_q == (dense_q_above < 1.0) for layer in engine.layers.values()
                   for r in layer.reports if r.kind == fe.StepKind.DISPATCH)


@pytest.mark.parametrize("name", ["flux", "hunyuan", "wan"])
def test_whole_layer_reuse_below_the_density_threshold(name):
    model, forward, outs, apply, _ = MODELS[name]()
    nq = len(SPARSE[name][0][0])
    low = np.zeros((1, HEADS, nq), dtype=bool)
    low[0, 0, 0] = True  # density 1 / (2 nq) < 0.3
    engine = make_engine(MaskPolicy(low), reuse_below=0.3)
    with torch.no_grad():
        got = flashomni_run(model, forward, apply, engine)
        expect = expected_run(model, forward, outs, engine.schedule, np.zeros_like(low), 2)
    assert_steps_close(got, expect)
    for layer in engine.layers.values():
        assert [r.kind for r in layer.reports].count(fe.StepKind.REUSE) == 3


def test_undo_restores_stock_modules():
    model, forward, _, apply, _ = flux()
    block = model.single_transformer_blocks[0]
    stock_proc, stock_proj = block.attn.processor, block.proj_out
    undo = apply(model, make_engine(MaskPolicy(np.ones((1, HEADS, 5)))))
    assert isinstance(block.attn.processor, fod.FluxSingleProcessor)
    assert isinstance(block.proj_out, fod.FlashOmniProjOut)
    assert block.proj_out.weight is stock_proj.weight
    assert isinstance(model.transformer_blocks[0].attn.processor, fod.FluxDoubleProcessor)
    undo()
    assert block.attn.processor is stock_proc and block.proj_out is stock_proj


def test_wan_undo_restores_stock_processors_and_cross_attention_stays_stock():
    model, forward, _, apply, _ = wan()
    stock = [(b.attn1.processor, b.attn2.processor) for b in model.blocks]
    undo = apply(model, make_engine(MaskPolicy(np.ones((1, HEADS, 5)))))
    for b, (self_proc, cross_proc) in zip(model.blocks, stock):
        assert isinstance(b.attn1.processor, fod.WanSelfAttentionProcessor)
        assert b.attn2.processor is cross_proc
    undo()
    assert [(b.attn1.processor, b.attn2.processor) for b in model.blocks] == stock


def test_padding_text_mask_is_rejected():
    mask = torch.ones(1, 64, dtype=torch.int64)
    mask[0, 60:] = 0
    model, forward, _, apply, _ = hunyuan(mask)
    engine = make_engine(MaskPolicy(np.ones((1, HEADS, 3))))
    apply(model, engine)
    with torch.no_grad(), pytest.raises(NotImplementedError, match="attention_mask"):
        forward(0)


@pytest.mark.parametrize("name", ["flux", "wan"])
def test_fused_projections_are_rejected(name):
    model, forward, _, apply, _ = MODELS[name]()
    model.fuse_qkv_projections()
    apply(model, make_engine(MaskPolicy(np.ones((1, HEADS, 5)))))
    with torch.no_grad(), pytest.raises(NotImplementedError, match="unfused"):
        forward(0)


@pytest.mark.parametrize("name", ["flux", "hunyuan", "wan"])
def test_runs_with_the_default_policy(name):
    pytest.importorskip("flashomni.policy")
    model, forward, _, apply, _ = MODELS[name]()
    cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=STEPS, warmup=2, interval=2),
                          policy=fe.PolicyConfig(tau_q=1.0, tau_kv=1.0), block_q=BLOCK,
                          block_kv=BLOCK)
    engine = fe.FlashOmniEngine(cfg)
    with torch.no_grad():
        got = flashomni_run(model, forward, apply, engine)
        stock = run_steps(model, forward)
    for layer in engine.layers.values():
        assert layer.symbols is not None and layer.density["query"]["overall"] > 0
    for g, e in zip(got, stock):
        assert torch.isfinite(g[0]).all()
        assert (g[0] - e[0]).norm() < 0.5 * e[0].norm()


def test_wan_caches_query_blocks_with_the_output_change_score():
    """Wan self-attention has no text: the text-image score keeps every query block, the
    output-change score caches some at late steps (tau_q 1: dispatch 6, from update 5 vs update 3,
    measured 0.7 in both blocks; phi(s) = (s / 8)^2 is too small before). Outputs stay near the
    stock model's."""
    pytest.importorskip("flashomni.policy")
    model, forward, _, apply, _ = wan()
    densities = {}
    for score in ("text_image", "output_change"):
        cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=STEPS, warmup=2, interval=2),
                              policy=fe.PolicyConfig(tau_q=1.0), block_q=BLOCK, block_kv=BLOCK,
                              query_score=score)
        engine = fe.FlashOmniEngine(cfg)
        with torch.no_grad():
            got = flashomni_run(model, forward, apply, engine)
        densities[score] = {name: [r.query_density for r in layer.reports]
                            for name, layer in engine.layers.items()}
        if score == "output_change":
            stock = run_steps(model, forward)
            for g, e in zip(got, stock):
                assert torch.isfinite(g[0]).all()
                assert (g[0] - e[0]).norm() < 0.5 * e[0].norm()
    for name in LAYERS["wan"]:
        assert densities["text_image"][name] == [1.0] * STEPS
        change = densities["output_change"][name]
        assert change[6] < 1.0, (name, change)
