#!/usr/bin/env bash
# One lent-GPU call comparing settings of ONE library that are read from the environment at every
# call (FLASHOMNI_GEMM_PREFETCH, FLASHOMNI_GEMM_SPLIT_K, ...): gemm_check of the library, then per
# run and arm the clock64 trace (when TRACE names a library built with scripts/gemm_trace.patch)
# and bench/gemm_bench.py, arms alternating so drift in clocks hits them alike.
# Usage: LIB=build-x TRACE=build-trace-x ARMS="off:FLASHOMNI_GEMM_PREFETCH=0 on:FLASHOMNI_GEMM_PREFETCH=8" \
#   FLASHOMNI_COMMIT=<sha> bash scripts/gpu_ab_env.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
LIB=${LIB:?LIB=<build dir>} ARMS=${ARMS:?ARMS=\"name:VAR=value ...\"}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt"
echo "commit ${FLASHOMNI_COMMIT:-unknown}, $(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$OUT/device.txt"
rc=0
if [ "${CHECK:-1}" = 1 ]; then
  echo "=== gemm_check"
  LD_LIBRARY_PATH=$PWD/$LIB timeout 200 "$LIB/gemm_check" > "$OUT/gemm_check.log" 2>&1 || rc=1
  grep -v '^\[PASS\]' "$OUT/gemm_check.log" | tail -6
fi
for run in ${RUNS-1 2}; do
  for arm in $ARMS; do
    name=${arm%%:*} setting=${arm#*:}
    if [ -n "${TRACE:-}" ]; then
      echo "=== trace $name run $run"
      env "$setting" FLASHOMNI_LIBRARY=$PWD/$TRACE/libflashomni.so timeout 200 \
        python3 bench/gemm_trace_probe.py --out "$OUT/trace_${name}_run${run}" \
        ${TRACE_CASES:+--cases $TRACE_CASES} > "$OUT/trace_${name}_run${run}.log" 2>&1 || rc=1
      grep -o '^[0-9.:]* {"ghz": [0-9.]*\|"kblock_efficiency_n256": [0-9.a-z]*\|"ms": \[[0-9.]*' \
        "$OUT/trace_${name}_run${run}.log" | paste - - - | head -12
    fi
    if [ "${BENCH:-1}" = 1 ]; then
      echo "=== bench $name run $run"
      env "$setting" FLASHOMNI_COMMIT=${FLASHOMNI_COMMIT:-}-$name \
        FLASHOMNI_LIBRARY=$PWD/$LIB/libflashomni.so timeout 240 python3 bench/gemm_bench.py \
        --out "$OUT" --tag "${name}_run${run}" ${BENCH_ARGS:-} > "$OUT/bench_${name}_run${run}.log" 2>&1 ||
        { echo "bench failed"; rc=1; }
      grep -E "gemm_q " "$OUT/bench_${name}_run${run}.log" | head -16
    fi
  done
done
exit $rc
