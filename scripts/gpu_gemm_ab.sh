#!/usr/bin/env bash
# Runs on the lent GPU machine: A/B of the sparse GEMM's split (stream-K) tail — the benchmark with
# FLASHOMNI_GEMM_SPLIT=1 and =0 in one call, then Nsight Compute on gemm_q (M = 4608, density
# 0.25) in both modes. Uses the prebuilt build-gemm-bin/. Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gemm_ab}
mkdir -p "$OUT"
BIN=$PWD/build-gemm-bin
export LD_LIBRARY_PATH=$BIN FLASHOMNI_LIBRARY=$BIN/libflashomni.so PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/python:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}
ROWS=${ROWS:-4608 16896}
for split in 1 0; do
  FLASHOMNI_GEMM_SPLIT=$split timeout 200 python3 bench/gemm_bench.py --rows $ROWS \
    --densities 1 0.5 0.25 0.1 --out "$OUT" --tag "ab_split$split" > "$OUT/bench_split$split.log" 2>&1
done
cat > /tmp/one_gemm.py <<'PY'
import torch, gemm_bench as gb, flashomni as fo
x = torch.randn(4608, 3072, device="cuda", dtype=torch.bfloat16)
w = torch.randn(3072, 3072, device="cuda", dtype=torch.bfloat16) / 64
s, _ = gb.symbols(4608, 0.25, 3)
for _ in range(6):
    fo.gemm_q(x, w, None, heads=24, head_dim=128, symbols=s)
torch.cuda.synchronize()
PY
for split in 1 0; do
  FLASHOMNI_GEMM_SPLIT=$split timeout 120 ncu --kernel-name regex:sparse_gemm --launch-skip 4 \
    --launch-count 1 --section SpeedOfLight --section WarpStateStats --section LaunchStats \
    python3 /tmp/one_gemm.py > "$OUT/ncu_split$split.txt" 2>&1
done
paste <(cut -c1-100 "$OUT/bench_split1.log") <(cut -c60-100 "$OUT/bench_split0.log")
