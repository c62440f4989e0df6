# gemm_q's planner at M = 4608 density 0.1 (24 heads), next to a trivial torch kernel.
import sys, torch, flashomni as fo
sys.path.insert(0, "bench")
from gemm_bench import case_symbols, HEADS, HEAD_DIM
m = 4608
x = torch.randn(m, 3072, device="cuda", dtype=torch.bfloat16)
w = torch.randn(HEADS * HEAD_DIM, 3072, device="cuda", dtype=torch.bfloat16) / 3072 ** 0.5
out = torch.empty(m, HEADS * HEAD_DIM, device="cuda", dtype=torch.bfloat16)
small = torch.empty(1024, device="cuda")
s, _ = case_symbols("q", m, 0.1, 0)
for _ in range(3):
    small.zero_()
    fo.gemm_q(x, w, None, heads=HEADS, symbols=s, out=out)
torch.cuda.synchronize()
print("done", flush=True)
