#!/usr/bin/env bash
# GPU run for sparse_attention (lent H100): build (or use carried prebuilt binaries), the C++ check
# program against the CPU oracle, compute-sanitizer memcheck + racecheck on a small case, the
# pytest suite against torch SDPA, and the benchmark. Logs go to $OUT (default ./gpu-out).
# Usage: bash scripts/gpu_attention.sh [build] [check] [pytest] [bench] [sanitize] (default: all)
#   FLASHOMNI_PREBUILT=dir  use dir/libflashomni.so and dir/attention_check instead of building.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
STEPS=${*:-build check pytest bench sanitize}
BUILD_DIR=${FLASHOMNI_BUILD_DIR:-build-attn}
BIN=${FLASHOMNI_PREBUILT:-$BUILD_DIR}
status=0
has() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo "=== $1 ($(date +%T))"; }

step env
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv; cmake --version | head -1;
  nvcc --version | tail -1; python3 -c 'import torch; print("torch", torch.__version__)'; } \
  2>&1 | tee "$OUT/env.txt"

if has build && [ -z "${FLASHOMNI_PREBUILT:-}" ]; then
  step build
  source scripts/env.sh
  fo_gpu_build "$OUT/build.log" attention_check
fi
export LD_LIBRARY_PATH="$PWD/$BIN:${LD_LIBRARY_PATH:-}"
export FLASHOMNI_LIBRARY="$PWD/$BIN/libflashomni.so" PYTHONPATH="$PWD/python" PYTHONUNBUFFERED=1
SEED=${FLASHOMNI_SEED:-$RANDOM}

if has check; then
  step "check (seed $SEED)"
  timeout "${FLASHOMNI_CHECK_TIMEOUT:-120}" "$BIN/attention_check" "$SEED" 2>&1 |
    tee "$OUT/check.log" | grep -v "^\[PASS\]"
  rc=${PIPESTATUS[0]}
  # A hang or a crash makes every later step meaningless: stop here.
  [ "$rc" -eq 0 ] || { echo "check failed (rc $rc)"; exit 1; }
fi
if has sanitize; then
  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool"
    timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/attention_check" \
      "$SEED" quick \
      > "$OUT/sanitize_$tool.log" 2>&1
    rc=$?
    tail -4 "$OUT/sanitize_$tool.log"
    [ $rc -eq 0 ] || status=1
  done
fi
if has pytest; then
  step pytest
  timeout 240 python3 -m pytest -q -x tests/gpu/test_attention*.py 2>&1 | tee "$OUT/pytest.log" | tail -15
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
if has bench; then
  step bench
  timeout "${FLASHOMNI_BENCH_TIMEOUT:-360}" python3 bench/attention_bench.py --out "$OUT/attention_bench.json" \
    --plot "$OUT/attention_bench.png" ${FLASHOMNI_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
step "done (status $status)"
exit $status
