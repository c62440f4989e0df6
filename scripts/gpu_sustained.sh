#!/usr/bin/env bash
# One lent-GPU call for the figures of record of the GEMMs: every GEMM-Q / GEMM-O case of
# gemm_bench.py under sustained load (bench/gemm_clock_probe.py, cuBLAS phases alternating with
# ours in each shape group) and in gemm_bench's short bursts, fp32 cache first, then the bf16
# cache (GEMM-O only). Most important first (a call may time out). Carry the library's folder.
# Usage: LIB=.carry/new FLASHOMNI_COMMIT=<sha> bash scripts/gpu_sustained.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
LIB=${LIB:-.carry/new}
TAG=${TAG:-h100_${FLASHOMNI_COMMIT:-local}}
TAG=${TAG//[^A-Za-z0-9_.-]/_}  # the device tool returns no file whose name has other characters
export FLASHOMNI_LIBRARY=$PWD/$LIB/libflashomni.so PYTHONPATH=$PWD/python:$PWD/bench
D="1 0.5 0.25 0.1"
rc=0
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$OUT/smi.txt" 2>&1
run() {  # $1: seconds allowed, $2: log name, rest: the command
  local t=$1 log=$2
  shift 2
  echo "=== $log: $*"
  timeout "$t" "$@" > "$OUT/$log.log" 2>&1 || { echo "rc $?"; rc=1; }
  tail -2 "$OUT/$log.log"
}
run 230 sustained_fp32 python3 bench/gemm_clock_probe.py --ops q o --densities $D --seconds 0.8 \
  --out "$OUT" --tag "${TAG}_float32cache"
run 100 burst_fp32 python3 bench/gemm_bench.py --out "$OUT" --tag "${TAG}_float32cache"
run 160 sustained_bf16 python3 bench/gemm_clock_probe.py --ops o --densities $D --seconds 0.8 \
  --cache-dtype bfloat16 --out "$OUT" --tag "${TAG}_bfloat16cache"
run 80 burst_bf16 python3 bench/gemm_bench.py --ops o --cache-dtype bfloat16 --out "$OUT" \
  --tag "${TAG}_bfloat16cache"
exit $rc
