#!/usr/bin/env bash
# One lent-GPU call for the staged bias (GemmKernelParams::bias_staged, session 14): gemm_check of
# the new build, then the sustained probe in three arms of the same library, staged bias,
# FLASHOMNI_GEMM_BIAS_STAGED=0 (bias from global memory), staged again, then memcheck and
# racecheck of gemm_check --quick. Carry the library's folder.
# Usage: NEW=.carry/bias FLASHOMNI_COMMIT=<sha> bash scripts/gpu_bias_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
NEW=${NEW:-.carry/bias}
TAG=h100_${FLASHOMNI_COMMIT:-local}
export LD_LIBRARY_PATH=$PWD/$NEW FLASHOMNI_LIBRARY=$PWD/$NEW/libflashomni.so \
  PYTHONPATH=$PWD/python:$PWD/bench
rc=0
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$OUT/smi.txt" 2>&1
echo "=== gemm_check"
timeout 100 "$NEW/gemm_check" > "$OUT/gemm_check.log" 2>&1 || { echo "rc $?"; rc=1; }
grep -v '^\[PASS\]' "$OUT/gemm_check.log" | tail -6
for arm in staged global staged_again; do
  echo "=== probe, $arm bias"
  if [ "$arm" = global ]; then export FLASHOMNI_GEMM_BIAS_STAGED=0; else unset FLASHOMNI_GEMM_BIAS_STAGED; fi
  timeout 100 python3 bench/gemm_clock_probe.py --ops q o --densities 1 0.25 --extras 0 \
    --seconds 0.8 --out "$OUT" --tag "${TAG}_$arm" > "$OUT/probe_$arm.log" 2>&1 || { echo "rc $?"; rc=1; }
  grep "sustained" "$OUT/probe_$arm.log"
done
unset FLASHOMNI_GEMM_BIAS_STAGED
for tool in memcheck racecheck; do
  echo "=== $tool gemm_check --quick"
  timeout 90 compute-sanitizer --tool $tool "$NEW/gemm_check" --quick > "$OUT/${tool}_quick.log" 2>&1 \
    || { echo "rc $?"; rc=1; }
  tail -3 "$OUT/${tool}_quick.log"
done
exit $rc
