#!/usr/bin/env bash
# GPU run for the symbol policy and the forecast (lent H100): build (or use carried prebuilt
# binaries), tests/gpu/policy_check (exact equality with the CPU oracle, then the timing at
# N = 16896 / 33792), and compute-sanitizer memcheck + racecheck on the small cases. The check's
# output goes to $OUT/policy_check_<date>.txt with the device, commit and date on top (copy it to
# bench/results/). Usage: bash scripts/gpu_policy.sh [build] [check] [sanitize] (default: all)
#   FLASHOMNI_PREBUILT=dir  use dir/libflashomni.so and dir/policy_check instead of building.
# Expected: about 30 s for the check (the CPU oracle at N = 33792 is the slow part), 20 s each
# sanitizer, about 90 s for a build on 16 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
STEPS=${*:-build check sanitize}
BUILD_DIR=${FLASHOMNI_BUILD_DIR:-build}
BIN=${FLASHOMNI_PREBUILT:-$BUILD_DIR}
status=0
has() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo "=== $1 ($(date +%T))"; }

if has build && [ -z "${FLASHOMNI_PREBUILT:-}" ]; then
  step build
  source scripts/env.sh
  fo_gpu_build "$OUT/build.log" policy_check
fi
export LD_LIBRARY_PATH="$PWD/$BIN:${LD_LIBRARY_PATH:-}"

if has check; then
  step check
  LOG="$OUT/policy_check_$(date +%Y-%m-%d).txt"
  { echo "# tests/gpu/policy_check — $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "# $(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>&1)"
  } > "$LOG"
  timeout "${FLASHOMNI_CHECK_TIMEOUT:-150}" "$BIN/policy_check" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  # A hang or a crash makes the sanitizer runs meaningless: stop here.
  [ "$rc" -eq 0 ] || { echo "check failed (rc $rc)"; exit 1; }
fi
if has sanitize; then
  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool"
    timeout 120 compute-sanitizer --tool "$tool" --error-exitcode 9 "$BIN/policy_check" --small \
      --no-bench > "$OUT/sanitize_$tool.log" 2>&1
    rc=$?
    tail -4 "$OUT/sanitize_$tool.log"
    [ $rc -eq 0 ] || status=1
  done
fi
step "done (status $status)"
exit $status
