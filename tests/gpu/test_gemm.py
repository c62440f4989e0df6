"""FlashOmni GPU tests (pytest + torch): gemm_q / gemm_o_update / gemm_o_dispatch on CUDA tensors
through the Python layer, against torch fp32 references. Skipped without a CUDA device or a
CUDA-enabled libflashomni."""

import numpy as np
import pytest

from cuda_env import require_cuda

torch, fo = require_cuda()

BLOCK = 128


def random_symbols(heads, rows, density, row_offset=0, seed=0):
    """Symbols on the GPU with random Sq covering rows row_offset .. row_offset + rows - 1."""
    rng = np.random.default_rng(seed)
    q_blocks = (rows + row_offset + BLOCK - 1) // BLOCK
    active = rng.random((1, heads, q_blocks)) < density
    q_words = (q_blocks + 31) // 32
    words = np.zeros((1, heads, q_words), dtype=np.uint32)
    for i in range(q_blocks):
        words[..., i // 32] |= active[..., i].astype(np.uint32) << np.uint32(i % 32)
    kv = np.zeros((1, heads, q_blocks, q_words), dtype=np.uint32)
    s = fo.Symbols(torch.from_numpy(words.view(np.int32)).cuda(),
                   torch.from_numpy(kv.view(np.int32)).cuda(), heads=heads, q_blocks=q_blocks,
                   kv_blocks=q_blocks)
    return s, active[0]


def row_active(active, rows, row_offset):
    """[heads, rows] bool: row m of head h is active."""
    blocks = (np.arange(rows) + row_offset) // BLOCK
    return torch.from_numpy(active[:, blocks]).cuda()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head_dim,density,row_offset", [(128, 0.5, 0), (64, 0.3, 64),
                                                         (128, 1.0, 0), (128, 0.0, 0)])
def test_gemm_q(dtype, head_dim, density, row_offset):
    heads, rows, k = 6, 333, 384
    x = torch.randn(rows, k, device="cuda", dtype=dtype)
    w = torch.randn(heads * head_dim, k, device="cuda", dtype=dtype) / k ** 0.5
    b = torch.randn(heads * head_dim, device="cuda", dtype=dtype)
    s, active = random_symbols(heads, rows, density, row_offset, seed=1)
    poison = torch.full((rows, heads * head_dim), 7.0, device="cuda", dtype=dtype)
    out = fo.gemm_q(x, w, b, heads=heads, symbols=s, row_offset=row_offset, out=poison.clone())
    ref = (x.float() @ w.float().T + b.float()).view(rows, heads, head_dim)
    mask = row_active(active, rows, row_offset).T[:, :, None].expand_as(ref)
    got = out.float().view(rows, heads, head_dim)
    assert torch.equal(got[~mask], poison.float().view(rows, heads, head_dim)[~mask])
    if mask.any():
        err = (got[mask] - ref[mask]).norm() / ref[mask].norm()
        assert err < 1e-2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cache_dtype", [torch.float32, None])
def test_gemm_o_update_dispatch(dtype, cache_dtype):
    heads, head_dim, rows, n, extra = 8, 128, 300, 320, 64
    cache_dtype = cache_dtype or dtype
    k = heads * head_dim + extra
    a = torch.randn(rows, k, device="cuda", dtype=dtype)
    w = torch.randn(n, k, device="cuda", dtype=dtype) / k ** 0.5
    b = torch.randn(n, device="cuda", dtype=dtype)
    s, active = random_symbols(heads, rows, 0.5, seed=2)
    y, cache = fo.gemm_o_update(a, w, b, heads=heads, head_dim=head_dim, symbols=s,
                                cache_dtype=cache_dtype)
    act = row_active(active, rows, 0)  # [heads, rows]
    col_active = torch.cat([act.T.repeat_interleave(head_dim, dim=1),
                            torch.ones(rows, extra, dtype=torch.bool, device="cuda")], dim=1)
    af = a.float()
    c_ref = (af * (~col_active)) @ w.float().T + b.float()
    y_ref = af @ w.float().T + b.float()
    tol = 1e-5 if cache_dtype == torch.float32 else 1e-2
    assert (cache.float() - c_ref).norm() / c_ref.norm() < tol
    assert (y.float() - y_ref).norm() / y_ref.norm() < 1e-2
    y2 = fo.gemm_o_dispatch(a, w, cache, heads=heads, head_dim=head_dim, symbols=s)
    assert torch.equal(y2, y)
    # A dispatch must not read the attention rows of cached heads: poison them.
    a_poisoned = a.masked_fill(~col_active, float("nan"))
    y3 = fo.gemm_o_dispatch(a_poisoned, w, cache, heads=heads, head_dim=head_dim, symbols=s)
    assert torch.equal(y3, y)


def test_gemm_q_dense_matches_torch():
    x = torch.randn(4, 200, 256, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(512, 256, device="cuda", dtype=torch.bfloat16) / 16
    out = fo.gemm_q(x, w, heads=4)
    ref = x.float() @ w.float().T
    assert (out.float() - ref).norm() / ref.norm() < 1e-2


def test_cuda_graph_capture():
    heads, rows, k = 4, 256, 256
    x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(heads * 128, k, device="cuda", dtype=torch.bfloat16) / 16
    s, _ = random_symbols(heads, rows, 0.5, seed=3)
    out = torch.zeros(rows, heads * 128, device="cuda", dtype=torch.bfloat16)
    fo.gemm_q(x, w, heads=heads, symbols=s, out=out)  # warm-up (workspace, module load)
    torch.cuda.synchronize()
    expect = out.clone()
    out.zero_()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fo.gemm_q(x, w, heads=heads, symbols=s, out=out)
    g.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, expect)


def test_planned_lists_follow_new_symbols_in_a_cuda_graph():
    """gemm_q, gemm_o_update and gemm_o_dispatch with 40 heads of 64 (head masks past bit 32:
    GEMM-O's items carry them in two words) captured once. New Sq written into the same tensor
    between replays: the planners re-plan on the GPU, gemm_q writes only the new active pairs,
    and update + dispatch with the same symbols stay one dense projection."""
    heads, head_dim, rows, k, n = 40, 64, 700, 512, 384
    dt, dev = torch.bfloat16, "cuda"
    x = torch.randn(rows, k, device=dev, dtype=dt)
    wq = torch.randn(heads * head_dim, k, device=dev, dtype=dt) / k ** 0.5
    a = torch.randn(rows, heads * head_dim, device=dev, dtype=dt)
    wo = torch.randn(n, heads * head_dim, device=dev, dtype=dt) / (heads * head_dim) ** 0.5
    bo = torch.randn(n, device=dev, dtype=dt)
    s, _ = random_symbols(heads, rows, 0.3, seed=21)
    q_out = torch.zeros(rows, heads * head_dim, device=dev, dtype=dt)
    y_update = torch.empty(rows, n, device=dev, dtype=dt)
    y_dispatch = torch.empty(rows, n, device=dev, dtype=dt)
    cache = torch.empty(rows, n, device=dev, dtype=torch.float32)

    def step():
        fo.gemm_q(x, wq, heads=heads, symbols=s, out=q_out)
        fo.gemm_o_update(a, wo, bo, heads=heads, head_dim=head_dim, symbols=s, out=y_update,
                         cache=cache)
        fo.gemm_o_dispatch(a, wo, cache, heads=heads, head_dim=head_dim, symbols=s,
                           out=y_dispatch)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # warm-up on the capture stream (workspaces, module load)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    q_ref = x.float() @ wq.float().T
    y_ref = a.float() @ wo.float().T + bo.float()
    for seed, density in ((22, 0.1), (23, 0.6), (24, 1.0), (25, 0.0)):
        s2, active = random_symbols(heads, rows, density, seed=seed)
        s.q_bits.copy_(s2.q_bits)
        q_out.zero_()
        graph.replay()
        torch.cuda.synchronize()
        mask = row_active(active, rows, 0).T[:, :, None].expand(rows, heads, head_dim)
        mask = mask.reshape(rows, -1)
        if mask.any():
            got, ref = q_out.float()[mask], q_ref[mask]
            assert ((got - ref).norm() / ref.norm()).item() < 1e-2
        assert not q_out[~mask].any()  # cached pairs untouched
        for y in (y_update, y_dispatch):
            assert ((y.float() - y_ref).norm() / y_ref.norm()).item() < 1e-2


def test_planner_past_one_chunk_of_candidates():
    """1025 row tiles (131,200 rows): more candidates than the planner's 1024 threads, so the
    chunked passes run (plan_q_groups, the GEMM-O sort), where shorter lists take the one-pass
    path. gemm_q writes exactly the active pairs; update + dispatch equal one dense projection."""
    heads, head_dim, rows, k, n = 2, 128, 131_200, 128, 256
    dt, dev = torch.bfloat16, "cuda"
    x = torch.randn(rows, k, device=dev, dtype=dt)
    wq = torch.randn(heads * head_dim, k, device=dev, dtype=dt) / k ** 0.5
    s, active = random_symbols(heads, rows, 0.5, seed=31)
    q = torch.zeros(rows, heads * head_dim, device=dev, dtype=dt)
    fo.gemm_q(x, wq, heads=heads, symbols=s, out=q)
    mask = row_active(active, rows, 0).T[:, :, None].expand(rows, heads, head_dim)
    mask = mask.reshape(rows, -1)
    ref = x.float() @ wq.float().T
    assert ((q.float()[mask] - ref[mask]).norm() / ref[mask].norm()).item() < 1e-2
    assert not q[~mask].any()
    a = torch.randn(rows, heads * head_dim, device=dev, dtype=dt)
    wo = torch.randn(n, heads * head_dim, device=dev, dtype=dt) / (heads * head_dim) ** 0.5
    bo = torch.randn(n, device=dev, dtype=dt)
    y_update, cache = fo.gemm_o_update(a, wo, bo, heads=heads, head_dim=head_dim, symbols=s)
    y = fo.gemm_o_dispatch(a, wo, cache, heads=heads, head_dim=head_dim, symbols=s)
    y_ref = a.float() @ wo.float().T + bo.float()
    for got in (y_update, y):
        assert ((got.float() - y_ref).norm() / y_ref.norm()).item() < 1e-2
