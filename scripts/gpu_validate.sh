#!/usr/bin/env bash
# One lent-GPU call that re-checks the current tree with prebuilt binaries: the C++ check programs
# against the CPU oracle, the GPU pytest suites, the demo on the CUDA backend, and (optionally) an
# end-to-end run. Usage on the GPU machine (carry the build dir and .whl):
#   FLASHOMNI_PREBUILT=build-lead FLASHOMNI_COMMIT=<sha> bash scripts/gpu_validate.sh [steps...]
# steps: checks pytest demo e2e (default: all). Logs go to $OUT; exits non-zero if a step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/gpu-out}
BIN=${FLASHOMNI_PREBUILT:?set FLASHOMNI_PREBUILT to a directory holding libflashomni.so and the checks}
STEPS=${*:-checks pytest demo e2e}
has() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo "=== $1 ($(date +%T))"; }
mkdir -p "$OUT"
status=0
export LD_LIBRARY_PATH=$PWD/$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} FLASHOMNI_LIBRARY=$PWD/$BIN/libflashomni.so PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt"
echo "commit ${FLASHOMNI_COMMIT:-unknown}, $(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$OUT/device.txt"

if has checks; then
  for prog in attention_check gemm_check; do
    step "$prog"
    timeout 150 "$BIN/$prog" > "$OUT/$prog.log" 2>&1
    rc=$?
    grep -v '^\[PASS\]' "$OUT/$prog.log" | tail -8
    [ $rc -eq 0 ] || { echo "$prog FAILED (rc $rc)"; status=1; }
  done
fi
if has pytest; then
  step "pytest tests/gpu"
  # The diffusers processor test in test_engine_graph.py needs the carried wheels (else skipped).
  shopt -s nullglob
  wheels=(.whl/diffusers-*.whl .whl/importlib_metadata-*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -eq 2 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "${wheels[@]}" && export PYTHONPATH=$PYTHONPATH:/tmp/site
  fi
  timeout 300 python3 -m pytest -q tests/gpu > "$OUT/pytest_gpu.log" 2>&1
  rc=$?
  tail -15 "$OUT/pytest_gpu.log"
  [ $rc -eq 0 ] || { echo "pytest FAILED (rc $rc)"; status=1; }
fi
if has demo; then
  step "demo on the CUDA backend"
  if [ -f scripts/gpu_demo.sh ]; then
    FLASHOMNI_PREBUILT=$BIN timeout 120 bash scripts/gpu_demo.sh > "$OUT/demo.log" 2>&1
  else
    timeout 120 "$BIN/flashomni_demo" --backend cuda > "$OUT/demo.log" 2>&1
  fi
  rc=$?
  tail -12 "$OUT/demo.log"
  [ $rc -eq 0 ] || { echo "demo FAILED (rc $rc)"; status=1; }
fi
if has e2e; then
  step "end to end"
  FLASHOMNI_PREBUILT=$BIN bash scripts/gpu_e2e.sh > "$OUT/e2e.log" 2>&1
  rc=$?
  grep -v "UserWarning\|_warn_once" "$OUT/e2e.log" | tail -40
  [ $rc -eq 0 ] || { echo "e2e FAILED (rc $rc)"; status=1; }
fi
step "done (status $status)"
exit $status
