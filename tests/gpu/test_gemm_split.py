"""FlashOmni GPU tests (pytest + torch): the sparse GEMMs' last-round K split (gemm_params.h,
last_round_k_parts) through the Python layer. Tiles of >= 80 k-blocks (K >= 5120) whose list
leaves a short last round are cut along K; FLASHOMNI_GEMM_SPLIT_K=0 turns that off. Both runs are
checked against torch fp32 references, the split run for determinism, and both list kinds (the
dense index, whose split flags are reset by a memset, and the planner's list) inside a CUDA graph.
Skipped without a CUDA device or a CUDA-enabled libflashomni."""

import numpy as np
import pytest

from cuda_env import require_cuda

torch, fo = require_cuda()

BLOCK = 128
HEADS, HEAD_DIM = 24, 128


def random_symbols(rows, density, seed):
    rng = np.random.default_rng(seed)
    q_blocks = (rows + BLOCK - 1) // BLOCK
    active = rng.random((1, HEADS, q_blocks)) < density
    q_words = (q_blocks + 31) // 32
    words = np.zeros((1, HEADS, q_words), dtype=np.uint32)
    for i in range(q_blocks):
        words[..., i // 32] |= active[..., i].astype(np.uint32) << np.uint32(i % 32)
    kv = torch.zeros(HEADS * q_blocks * q_words, dtype=torch.int32, device="cuda")
    s = fo.Symbols(torch.from_numpy(words.view(np.int32)).cuda(), kv, heads=HEADS,
                   q_blocks=q_blocks, kv_blocks=q_blocks)
    return s, active[0]


def rel_err(got, ref, mask=None):
    got, ref = got.float(), ref.float()
    if mask is not None:
        got, ref = got[mask], ref[mask]
    return ((got - ref).norm() / ref.norm()).item()


def both(monkeypatch, fn):
    """fn() with the split on (default), again (determinism), and off."""
    monkeypatch.delenv("FLASHOMNI_GEMM_SPLIT_K", raising=False)
    split, again = fn(), fn()
    monkeypatch.setenv("FLASHOMNI_GEMM_SPLIT_K", "0")
    unsplit = fn()
    monkeypatch.delenv("FLASHOMNI_GEMM_SPLIT_K")
    torch.cuda.synchronize()
    assert torch.equal(split, again)
    # The split adds the parts' sums in another order: bit-equal results over a million outputs
    # would mean it did not run.
    assert not torch.equal(split, unsplit)
    return split, unsplit


# 500 rows: 4 row tiles x 12 groups of 2 heads (GEMM-Q); 1000 rows: 8 row tiles x 4 column tiles
# (GEMM-O, N = 1024). At most 66 tiles on an H100's 132 SMs: the whole list is the last round and
# splits (in 2 parts of >= 40 k-blocks at these K).
@pytest.mark.parametrize("density", [1.0, 0.6])
def test_gemm_q_split(monkeypatch, density):
    rows, k = 500, 6144
    x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(HEADS * HEAD_DIM, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
    b = torch.randn(HEADS * HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    s, active = random_symbols(rows, density, 3) if density < 1 else (None, None)
    split, unsplit = both(monkeypatch, lambda: fo.gemm_q(x, w, b, heads=HEADS, symbols=s))
    ref = x.float() @ w.float().T + b.float()
    mask = None
    if active is not None:
        rows_active = torch.from_numpy(active[:, np.arange(rows) // BLOCK]).cuda()  # [H, M]
        mask = rows_active.T[:, :, None].expand(rows, HEADS, HEAD_DIM).reshape(rows, -1)
    assert rel_err(split, ref, mask) < 1e-2
    assert rel_err(unsplit, ref, mask) < 1e-2


@pytest.mark.parametrize("cache_dtype", [torch.float32, torch.bfloat16])
def test_gemm_o_dispatch_split(monkeypatch, cache_dtype):
    rows, n, extra = 1000, 1024, 3072
    k = HEADS * HEAD_DIM + extra
    a = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
    b = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    s, _ = random_symbols(rows, 0.7, 5)
    _, cache = fo.gemm_o_update(a, w, b, heads=HEADS, head_dim=HEAD_DIM, symbols=s,
                                cache_dtype=cache_dtype)
    split, unsplit = both(monkeypatch, lambda: fo.gemm_o_dispatch(
        a, w, cache, heads=HEADS, head_dim=HEAD_DIM, symbols=s))
    # update + dispatch with the same symbols is one dense projection.
    ref = a.float() @ w.float().T + b.float()
    tol = 1e-2 if cache_dtype == torch.float32 else 2e-2
    assert rel_err(split, ref) < tol
    assert rel_err(unsplit, ref) < tol


def test_split_lists_in_a_cuda_graph():
    """Dense gemm_q (split flags reset by a memset node) and planned gemm_o_dispatch (reset by the
    planner) captured in one graph: two replays equal the eager calls bit for bit."""
    rows, k, n = 500, 6144, 1024
    x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
    wq = torch.randn(HEADS * HEAD_DIM, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
    a = torch.randn(rows, HEADS * HEAD_DIM + 3072, device="cuda", dtype=torch.bfloat16)
    wo = torch.randn(n, a.shape[1], device="cuda", dtype=torch.bfloat16) / a.shape[1] ** 0.5
    s, _ = random_symbols(rows, 0.7, 9)
    _, cache = fo.gemm_o_update(a, wo, heads=HEADS, head_dim=HEAD_DIM, symbols=s)
    q_out = torch.empty(rows, HEADS * HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    y_out = torch.empty(rows, n, device="cuda", dtype=torch.bfloat16)

    def step():
        fo.gemm_q(x, wq, heads=HEADS, out=q_out)
        fo.gemm_o_dispatch(a, wo, cache, heads=HEADS, head_dim=HEAD_DIM, symbols=s, out=y_out)

    step()
    torch.cuda.synchronize()
    eager_q, eager_y = q_out.clone(), y_out.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # warm-up on the capture stream
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for _ in range(2):
        q_out.zero_()
        y_out.zero_()
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(q_out, eager_q)
        assert torch.equal(y_out, eager_y)
