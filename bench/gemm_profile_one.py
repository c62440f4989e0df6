"""FlashOmni: one GEMM call for Nsight Compute (ncu --kernel-name regex:sparse_gemm ...): gemm_q
on a [rows, 3072] x [3072, 3072] bf16 problem at a given query density (1 = dense, no symbols),
after warm-up calls; with a third argument "cublas", torch's F.linear (cuBLAS) on the same problem
instead. Usage: python3 bench/gemm_profile_one.py [rows] [density] [cublas]"""

import sys

import torch

import gemm_bench as gb  # bench/ on PYTHONPATH
import flashomni as fo

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 16896
density = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
x = torch.randn(rows, 3072, device="cuda", dtype=torch.bfloat16)
w = torch.randn(3072, 3072, device="cuda", dtype=torch.bfloat16) / 64
s = gb.symbols(rows, density, 3)[0] if density < 1 else None
cublas = len(sys.argv) > 3 and sys.argv[3] == "cublas"
for _ in range(6):
    if cublas:
        torch.nn.functional.linear(x, w)
    else:
        fo.gemm_q(x, w, None, heads=gb.HEADS, head_dim=gb.HEAD_DIM, symbols=s)
torch.cuda.synchronize()
