# Times gemm_q's planner and GEMM kernels alone under ncu (serialised: no PDL overlap).
import sys, torch, flashomni as fo
sys.path.insert(0, "bench")
from gemm_bench import case_symbols, HEADS, HEAD_DIM
for m in (4608, 16896):
    x = torch.randn(m, 3072, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(HEADS * HEAD_DIM, 3072, device="cuda", dtype=torch.bfloat16) / 3072 ** 0.5
    b = torch.randn(HEADS * HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(m, HEADS * HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    for d in (0.1, 0.5):
        s, _ = case_symbols("q", m, d, 0)
        for _ in range(3):
            fo.gemm_q(x, w, b, heads=HEADS, symbols=s, out=out)
    torch.cuda.synchronize()
    print("done", m, flush=True)
