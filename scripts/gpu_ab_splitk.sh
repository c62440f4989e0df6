#!/usr/bin/env bash
# One lent-GPU call for the last-round K split (session 6): gemm_check and a quick memcheck of the
# new build, then bench/gemm_bench.py at M = 4608 / 16896 (K = 3072 and 15360) alternating
# new (split on) / nosplit (same library, FLASHOMNI_GEMM_SPLIT_K=0) / old (the previous library).
# Usage: NEW=build-split OLD=build-gpu FLASHOMNI_COMMIT=<sha> bash scripts/gpu_ab_splitk.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
NEW=${NEW:-build-split} OLD=${OLD:-build-gpu}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt"
echo "commit ${FLASHOMNI_COMMIT:-unknown}, $(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$OUT/device.txt"
rc=0
echo "=== gemm_check"
LD_LIBRARY_PATH=$PWD/$NEW timeout 200 "$NEW/gemm_check" > "$OUT/gemm_check.log" 2>&1 || rc=1
grep -v '^\[PASS\]' "$OUT/gemm_check.log" | tail -12
if [ "${MEMCHECK:-1}" = 1 ]; then
  echo "=== memcheck gemm_check --quick"
  LD_LIBRARY_PATH=$PWD/$NEW timeout 240 compute-sanitizer --tool memcheck "$NEW/gemm_check" --quick \
    > "$OUT/memcheck_gemm_quick.log" 2>&1 || rc=1
  tail -4 "$OUT/memcheck_gemm_quick.log"
fi
for run in ${RUNS-1 2}; do
  for arm in new nosplit old; do
    lib=$NEW split=1
    [ "$arm" = nosplit ] && split=0
    [ "$arm" = old ] && lib=$OLD
    echo "=== $arm run $run"
    FLASHOMNI_GEMM_SPLIT_K=$split FLASHOMNI_COMMIT=${FLASHOMNI_COMMIT:-}-$arm \
      FLASHOMNI_LIBRARY=$PWD/$lib/libflashomni.so timeout 200 python3 bench/gemm_bench.py \
      --out "$OUT" --tag "splitk_${arm}_run${run}" --rows ${ROWS:-4608 16896} --extras 0 12288 \
      ${BENCH_ARGS:-} > "$OUT/gemm_splitk_${arm}_run${run}.log" 2>&1 || { echo "bench failed"; rc=1; }
    grep -c "ms" "$OUT/gemm_splitk_${arm}_run${run}.log"
  done
done
exit $rc
