#!/usr/bin/env bash
# One lent-GPU call: gemm_check (full, then --quick under compute-sanitizer memcheck), the
# pending-density / engine-graph GPU tests, and the idle probe of the FLUX-shaped model
# (bench/e2e_idle_probe.py). Carry the prebuilt dir (FLASHOMNI_PREBUILT, default build-gpu) and
# .whl; logs under $OUT. Extra probe arguments: PROBE_ARGS.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/gpu-out}
BIN=${FLASHOMNI_PREBUILT:-build-gpu}
mkdir -p "$OUT"
status=0
step() { echo "=== $1 ($(date +%T))"; }
export LD_LIBRARY_PATH=$PWD/$BIN FLASHOMNI_LIBRARY=$PWD/$BIN/libflashomni.so
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .whl/*.whl > /dev/null 2>&1
export PYTHONPATH=$PWD/python:$PWD/bench:/tmp/site
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
echo "commit ${FLASHOMNI_COMMIT:-unknown}, $(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$OUT/device.txt"
step gemm_check
timeout 200 "$BIN/gemm_check" > "$OUT/gemm_check.log" 2>&1 || { echo "gemm_check FAILED"; status=1; }
grep -v '^\[PASS\]' "$OUT/gemm_check.log" | tail -5; grep -i "n328" "$OUT/gemm_check.log" | head -8
step "memcheck gemm_check --quick"
timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/gemm_check" --quick \
  > "$OUT/gemm_memcheck.log" 2>&1 || { echo "memcheck FAILED"; status=1; }
tail -3 "$OUT/gemm_memcheck.log"
step "pytest pending density + engine graph"
timeout 200 python3 -m pytest -q tests/gpu/test_pending_density.py tests/gpu/test_engine_graph.py \
  > "$OUT/pytest_pending.log" 2>&1 || { echo "pytest FAILED"; status=1; }
tail -3 "$OUT/pytest_pending.log"
step "idle probe"
timeout 300 python3 bench/e2e_idle_probe.py --out "$OUT" ${PROBE_ARGS:-} > "$OUT/idle_probe.log" 2>&1 ||
  { echo "probe FAILED"; status=1; }
grep -v "Warning\|warn" "$OUT/idle_probe.log" | tail -60
step "done ($status)"
exit $status
