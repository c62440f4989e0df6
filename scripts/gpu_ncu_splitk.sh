#!/usr/bin/env bash
# Nsight Compute on single gemm_q calls (bench/gemm_profile_one.py) with the last-round K split on
# and off (FLASHOMNI_GEMM_SPLIT_K=0): duration, throughput and warp stalls (session 6).
# Usage: LIB=build-split bash scripts/gpu_ncu_splitk.sh "4608 0.1" "4608 1" ...
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/python:$PWD/bench FLASHOMNI_LIBRARY=$PWD/${LIB:-build-split}/libflashomni.so
for case in "$@"; do
  for split in 4 0; do
    tag="q_${case// /_}_split$split"
    FLASHOMNI_GEMM_SPLIT_K=$split timeout 120 ncu --clock-control none --kernel-name regex:sparse_gemm \
      --launch-skip 5 --launch-count 1 --section SpeedOfLight --section WarpStateStats \
      --section MemoryWorkloadAnalysis python3 bench/gemm_profile_one.py $case > "$OUT/ncu_$tag.txt" 2>&1
    echo "$tag: $(grep -E 'Duration|DRAM Throughput|Compute \(SM\) Throughput' "$OUT/ncu_$tag.txt" | tr -s ' ' | tr '\n' ';')"
  done
done
