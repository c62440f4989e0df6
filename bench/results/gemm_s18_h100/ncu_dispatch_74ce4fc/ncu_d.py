# Planned dispatch (fp32 and bf16 cache) and planned gemm_q at M = 4608 under ncu: the GEMM
# kernels alone (plans made first; kernels named sparse_gemm_kernel).
import sys, torch, flashomni as fo
sys.path.insert(0, "bench")
from gemm_bench import case_symbols, o_operands, q_operands, HEADS, HEAD_DIM
m = 4608
for cache_dt in (torch.float32, torch.bfloat16):
    k, a, wo, bo, y, cache = o_operands(m, 0, cache_dt)
    for d in (0.1,):
        s, _ = case_symbols("o", m, d, 0)
        kw = dict(heads=HEADS, head_dim=HEAD_DIM, symbols=s, out=y)
        plan = fo.gemm_o_dispatch_plan(a, wo, cache, **kw)
        torch.cuda.synchronize()
        for _ in range(2):
            fo.gemm_o_dispatch(a, wo, cache, plan=plan, **kw)
        torch.cuda.synchronize()
x, wq, bq, out = q_operands(m)
for d in (0.25,):
    s, _ = case_symbols("q", m, d, 0)
    plan = fo.gemm_q_plan(x, wq, bq, heads=HEADS, symbols=s, out=out)
    torch.cuda.synchronize()
    for _ in range(2):
        fo.gemm_q(x, wq, bq, heads=HEADS, symbols=s, out=out, plan=plan)
torch.cuda.synchronize()
print("done")
