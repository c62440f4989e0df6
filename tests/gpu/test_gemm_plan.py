"""FlashOmni GPU tests (pytest + torch): plan once, run many. gemm_q / gemm_o_update /
gemm_o_dispatch given a plan (gemm_*_plan) run the GEMM alone on the planned list; their outputs
must equal a call that plans itself, bit for bit, in every list shape (head dims 64 and 128, the
K split with its flags reset by each run on new inputs, batch, row_offset, a CUDA graph), and a plan made for
other arguments must be refused naming 'plan'."""

import numpy as np
import pytest

from cuda_env import require_cuda

torch, fo = require_cuda()

from test_gemm import BLOCK, random_symbols  # noqa: E402  (after the CUDA check)


def batch_symbols(batch, heads, rows, density, seed):
    """Symbols on the GPU for `batch` entries of `rows` rows with random Sq (Skv all kept)."""
    rng = np.random.default_rng(seed)
    q_blocks = (rows + BLOCK - 1) // BLOCK
    active = rng.random((batch, heads, q_blocks)) < density
    words = np.zeros((batch, heads, (q_blocks + 31) // 32), dtype=np.uint32)
    for i in range(q_blocks):
        words[..., i // 32] |= active[..., i].astype(np.uint32) << np.uint32(i % 32)
    kv = np.full((batch, heads, q_blocks, words.shape[-1]), 0xffffffff, dtype=np.uint32)
    return fo.Symbols(torch.from_numpy(words.view(np.int32)).cuda(),
                      torch.from_numpy(kv.view(np.int32)).cuda(), heads=heads,
                      q_blocks=q_blocks, kv_blocks=q_blocks, batch=batch)


def _q_case(head_dim, k, rows, heads, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(rows, k, device="cuda", dtype=dtype, generator=g)
    w = torch.randn(heads * head_dim, k, device="cuda", dtype=dtype, generator=g) / k ** 0.5
    b = torch.randn(heads * head_dim, device="cuda", dtype=dtype, generator=g)
    return x, w, b


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head_dim,k,density,row_offset", [(128, 384, 0.4, 0), (64, 320, 0.3, 64),
                                                           (128, 5120, 0.5, 0)])
def test_gemm_q_plan_runs_equal_a_planning_call(dtype, head_dim, k, density, row_offset):
    heads, rows = 6, 700
    x, w, b = _q_case(head_dim, k, rows, heads, dtype, seed=3)
    s, _ = random_symbols(heads, rows, density, row_offset, seed=4)
    poison = torch.full((rows, heads * head_dim), 5.0, device="cuda", dtype=dtype)
    want = fo.gemm_q(x, w, b, heads=heads, symbols=s, row_offset=row_offset, out=poison.clone())
    out = poison.clone()
    plan = fo.gemm_q_plan(x, w, b, heads=heads, symbols=s, row_offset=row_offset, out=out)
    for i in range(3):
        # K = 5120 splits its last round. New X in place each run: a flag left counted by the
        # last run would let an owner add that run's stale partials before this run's are stored.
        if i:
            x.copy_(torch.randn_like(x))
            want = fo.gemm_q(x, w, b, heads=heads, symbols=s, row_offset=row_offset,
                             out=poison.clone())
        out.copy_(poison)
        fo.gemm_q(x, w, b, heads=heads, symbols=s, row_offset=row_offset, out=out, plan=plan)
        assert torch.equal(out, want)


@pytest.mark.parametrize("cache_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("extra", [64, 4096])  # 4096: K = 5120, dispatch's last round splits
def test_gemm_o_plans_run_equal_planning_calls(cache_dtype, extra):
    heads, head_dim, rows, n, dtype = 8, 128, 520, 384, torch.bfloat16
    k = heads * head_dim + extra
    g = torch.Generator(device="cuda").manual_seed(5)
    a = torch.randn(2, rows, k, device="cuda", dtype=dtype, generator=g)
    w = torch.randn(n, k, device="cuda", dtype=dtype, generator=g) / k ** 0.5
    b = torch.randn(n, device="cuda", dtype=dtype, generator=g)
    s = batch_symbols(2, heads, rows, 0.5, seed=6)
    kw = dict(heads=heads, head_dim=head_dim, symbols=s)
    y_want, c_want = fo.gemm_o_update(a, w, b, cache_dtype=cache_dtype, **kw)
    d_want = fo.gemm_o_dispatch(a, w, c_want, **kw)
    y, cache = torch.empty_like(y_want), torch.empty_like(c_want)
    up = fo.gemm_o_update_plan(a, w, b, out=y, cache=cache, **kw)
    for _ in range(2):
        y.fill_(3.0)
        cache.fill_(3.0)
        fo.gemm_o_update(a, w, b, out=y, cache=cache, plan=up, **kw)
        assert torch.equal(y, y_want) and torch.equal(cache, c_want)
    out = torch.empty_like(d_want)
    dp = fo.gemm_o_dispatch_plan(a, w, cache, out=out, **kw)
    for i in range(3):
        if i:  # new A in place (see the GEMM-Q test: stale split partials must not be added)
            a.copy_(torch.randn_like(a))
            d_want = fo.gemm_o_dispatch(a, w, c_want, **kw)
        out.fill_(3.0)
        fo.gemm_o_dispatch(a, w, cache, out=out, plan=dp, **kw)
        assert torch.equal(out, d_want)


def test_planned_run_in_a_cuda_graph_and_a_new_plan_for_new_symbols():
    heads, head_dim, rows, k, dtype = 24, 128, 1000, 512, torch.bfloat16
    x, w, b = _q_case(head_dim, k, rows, heads, dtype, seed=6)
    s, _ = random_symbols(heads, rows, 0.3, seed=7)
    out = torch.zeros(rows, heads * head_dim, device="cuda", dtype=dtype)
    plan = fo.gemm_q_plan(x, w, b, heads=heads, symbols=s, out=out)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fo.gemm_q(x, w, b, heads=heads, symbols=s, out=out, plan=plan)
    out.zero_()
    graph.replay()
    want = fo.gemm_q(x, w, b, heads=heads, symbols=s, out=torch.zeros_like(out))
    torch.cuda.synchronize()
    assert torch.equal(out, want)
    # New bits in place: the graph still runs the old plan's list (the call cannot see the
    # words), a new plan follows them.
    s_new, _ = random_symbols(heads, rows, 0.6, seed=8)
    s.q_bits.copy_(s_new.q_bits)
    out.zero_()
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, want)
    fresh = fo.gemm_q_plan(x, w, b, heads=heads, symbols=s, out=out)
    out.zero_()
    fo.gemm_q(x, w, b, heads=heads, symbols=s, out=out, plan=fresh)
    want_new = fo.gemm_q(x, w, b, heads=heads, symbols=s, out=torch.zeros_like(out))
    torch.cuda.synchronize()
    assert torch.equal(out, want_new) and not torch.equal(want_new, want)


def test_a_plan_for_other_arguments_is_refused():
    heads, head_dim, rows, k, dtype = 6, 128, 400, 256, torch.bfloat16
    x, w, b = _q_case(head_dim, k, rows, heads, dtype, seed=9)
    s, _ = random_symbols(heads, rows + 128, 0.5, seed=10)
    out = torch.zeros(rows, heads * head_dim, device="cuda", dtype=dtype)
    plan = fo.gemm_q_plan(x, w, b, heads=heads, symbols=s, out=out)
    with pytest.raises(ValueError, match="plan.*other shapes"):
        fo.gemm_q(x, w, b, heads=heads, symbols=s, row_offset=128, out=out, plan=plan)
    with pytest.raises(ValueError, match="plan.*other shapes"):
        fo.gemm_q(x[:300], w, b, heads=heads, symbols=s, out=out[:300], plan=plan)
    other, _ = random_symbols(heads, rows + 128, 0.5, seed=10)
    with pytest.raises(ValueError, match="plan.*other symbols"):
        fo.gemm_q(x, w, b, heads=heads, symbols=other, out=out, plan=plan)
    with pytest.raises(ValueError, match="plan.*other symbols"):
        fo.gemm_q(x, w, b, heads=heads, out=out, plan=plan)  # dense: no list to run
    a = torch.randn(rows, heads * head_dim, device="cuda", dtype=dtype)
    wo = torch.randn(256, heads * head_dim, device="cuda", dtype=dtype)
    y, cache = fo.gemm_o_update(a, wo, None, heads=heads, symbols=s)
    up = fo.gemm_o_update_plan(a, wo, None, heads=heads, symbols=s, out=y, cache=cache)
    with pytest.raises(ValueError, match="plan.*gemm_o_update"):
        fo.gemm_o_dispatch(a, wo, cache, heads=heads, symbols=s, out=y, plan=up)
    with pytest.raises(ValueError, match="plan"):
        fo.gemm_o_update(a, wo, None, heads=heads, symbols=s, out=y, cache=cache, plan=plan)


def test_a_plan_runs_on_another_stream():
    heads, head_dim, rows, k, dtype = 4, 64, 300, 256, torch.float16
    x, w, b = _q_case(head_dim, k, rows, heads, dtype, seed=11)
    s, _ = random_symbols(heads, rows, 0.5, seed=12)
    want = fo.gemm_q(x, w, b, heads=heads, symbols=s, out=torch.zeros(rows, heads * head_dim,
                                                                        device="cuda", dtype=dtype))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        plan = fo.gemm_q_plan(x, w, b, heads=heads, symbols=s)
    torch.cuda.current_stream().wait_stream(side)
    out = torch.zeros_like(want)
    fo.gemm_q(x, w, b, heads=heads, symbols=s, out=out, plan=plan)
    torch.cuda.synchronize()
    assert torch.equal(out, want)


def test_engine_dispatch_steps_on_plans_equal_planning_calls():
    """The engine's dispatch steps run gemm_q / gemm_o_dispatch on the layer's plans
    (EngineConfig.gemm_plans): every step's outputs equal those of an engine without plans."""
    from flashomni import engine as fe
    from test_engine_graph import BLOCK as EB, STEPS, MaskPolicy, inputs, tiny_model

    bind, xs, outs = tiny_model(), inputs(), {}
    for plans in (False, True):
        cfg = fe.EngineConfig(schedule=fe.ScheduleConfig(num_steps=STEPS, warmup=2, interval=3),
                              block_q=EB, block_kv=EB, reuse_below=0.0, dense_q_above=1.0,
                              gemm_plans=plans)
        engine = fe.FlashOmniEngine(cfg, policy_fn=MaskPolicy())
        layer = engine.layer("block")
        run, kept = bind(layer), []
        outs[plans] = []
        for step, (img, txt) in enumerate(xs):
            engine.set_step(step)
            outs[plans].append([t.clone() for t in run(img, txt)])
            kept.append(len(layer._plans._plans))
        kinds = [r.kind for r in layer.reports]
        assert kinds.count(fe.StepKind.DISPATCH) == 4
        # 2 gemm_q (image, text) + 2 gemm_o_dispatch per dispatch step, none after an update.
        want = [4 * plans if k == fe.StepKind.DISPATCH else 0 for k in kinds]
        assert kept == want
    for a, b in zip(outs[False], outs[True]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
