"""FlashOmni GPU tests: the PyTorch custom ops (flashomni.torch_ops) on CUDA tensors.

Issue 3/4 contract: the ops trace under torch.compile (inductor, fullgraph), record into a CUDA
graph whose replays follow symbol words updated in place, and never synchronise the host.
Skipped without a CUDA GPU with FlashOmni's kernels.
"""

import numpy as np

from cuda_env import require_cuda

torch, fo = require_cuda()

import flashomni.torch_ops as fot  # noqa: E402

B, N, H, D, BLOCK = 1, 640, 4, 128, 128  # 5 query/key blocks, no tail: 640 = 5 * 128
NB = N // BLOCK


def random_symbols(seed, q_density=0.7, kv_density=0.6):
    rng = np.random.default_rng(seed)
    qm = rng.random((B, H, NB)) < q_density
    km = rng.random((B, H, NB, NB)) < kv_density
    return fo.Symbols.from_masks(qm, km).to("cuda")


def qkv(seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return [torch.randn(B, N, H, D, device="cuda", dtype=torch.bfloat16, generator=g)
            for _ in range(3)]


def test_opcheck_cuda():
    q, k, v = qkv(0)
    s = random_symbols(0)
    q_bits, kv_bits, shape = fot._symbols_to(s)
    out = torch.zeros_like(q)
    lse = torch.zeros(B, H, N, device="cuda", dtype=torch.float32)
    torch.library.opcheck(torch.ops.flashomni.sparse_attention.default,
                          (q, k, v, q_bits, kv_bits, shape, out, lse, None, None, 0, 0, 0.0))


def test_inductor_fullgraph_matches_eager():
    q, k, v = qkv(1)
    s = random_symbols(1)
    w = torch.randn(H * D, H * D, device="cuda", dtype=torch.bfloat16) * 0.02

    def layer(q, k, v):
        o = fot.sparse_attention(q, k, v, s)  # cached rows 0 (allocated zeroed)
        return fot.gemm_q(o.reshape(B * N, H * D), w, heads=H, symbols=s) * 1.5

    eager = layer(q, k, v)
    compiled = torch.compile(layer, fullgraph=True)(q, k, v)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)  # same kernels, same order


def test_cuda_graph_replays_follow_new_symbols_without_host_sync():
    q, k, v = qkv(2)
    s = random_symbols(2)
    q_bits, kv_bits, shape = fot._symbols_to(s)
    out = torch.full_like(q, 3.0)  # cached rows must keep this across replays
    lse = torch.zeros(B, H, N, device="cuda", dtype=torch.float32)

    def step():
        torch.ops.flashomni.sparse_attention(q, k, v, q_bits, kv_bits, shape, out, lse, None, None,
                                             0, 0, 0.0)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture stream, as torch's docs require
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()

    for seed in (3, 4, 5):
        new = random_symbols(seed)
        q_bits.copy_(new.q_bits)  # symbols change in place: the captured plan reads them anew
        kv_bits.copy_(new.kv_bits)
        out.fill_(3.0)
        torch.cuda.set_sync_debug_mode("error")
        try:
            graph.replay()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        ref = fo.sparse_attention(q, k, v, new, out=torch.full_like(q, 3.0))
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
