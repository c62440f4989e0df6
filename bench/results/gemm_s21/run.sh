#!/usr/bin/env bash
# Session 21 device call: fp32 cache staged in halves (FLASHOMNI_GEMM_FP32_STAGED, default on).
set -uo pipefail
cd "$(dirname "$0")/../.."
L=$PWD/.carry/s21
W=$OUT/w; mkdir -p "$W"
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 FLASHOMNI_LIBRARY=$L/libflashomni.so LD_LIBRARY_PATH=$L
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$W/device.txt"
echo "tree ${FLASHOMNI_COMMIT:-?} + fp32 staged diff, $(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$W/device.txt"
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
echo "=== gemm_check staged (t=$(el))"
timeout 150 $L/gemm_check > "$W/gemm_check_staged.log" 2>&1; echo "rc=$?"
grep -v '^\[PASS\]' "$W/gemm_check_staged.log" | tail -6
echo "=== gemm_check register path (t=$(el))"
FLASHOMNI_GEMM_FP32_STAGED=0 timeout 150 $L/gemm_check > "$W/gemm_check_off.log" 2>&1; echo "rc=$?"
grep -v '^\[PASS\]' "$W/gemm_check_off.log" | tail -3
echo "=== pytest gemm (t=$(el))"
timeout 150 python3 -m pytest -q tests/gpu/test_gemm.py tests/gpu/test_gemm_plan.py tests/gpu/test_gemm_split.py tests/gpu/test_gemm_cache_only.py > "$W/pytest_gemm.log" 2>&1; echo "rc=$?"
tail -3 "$W/pytest_gemm.log"
probe() {  # name env rows extras
  local name=$1 envs=$2 rows=$3 extras=$4
  [ $(el) -gt ${5:-480} ] && { echo "skip $name (time)"; return; }
  env $envs FLASHOMNI_COMMIT=s21-$name timeout 120 python3 bench/gemm_clock_probe.py --ops o \
    --rows $rows --extras $extras --densities 1 0.25 0.1 --planned --seconds 0.25 \
    --out "$W" --tag "$name" > "$W/probe_$name.log" 2>&1 || echo "probe $name failed"
  echo "--- $name (t=$(el))"; grep '(sustained)' "$W/probe_$name.log" | head -12
}
probe on_4608_1 "FLASHOMNI_GEMM_FP32_STAGED=1" 4608 0
probe off_4608_1 "FLASHOMNI_GEMM_FP32_STAGED=0" 4608 0
probe on_4608_2 "FLASHOMNI_GEMM_FP32_STAGED=1" 4608 0
probe off_4608_2 "FLASHOMNI_GEMM_FP32_STAGED=0" 4608 0
probe on_16896 "FLASHOMNI_GEMM_FP32_STAGED=1" 16896 "0 12288"
probe off_16896 "FLASHOMNI_GEMM_FP32_STAGED=0" 16896 "0 12288"
echo "=== memcheck subset (t=$(el))"
if [ $(el) -lt 470 ]; then
  timeout 100 compute-sanitizer --tool memcheck $L/gemm_check > "$W/memcheck.log" 2>&1; echo "rc=$?"
  tail -3 "$W/memcheck.log"
fi
cd "$W" && tar czf "$OUT/all.tgz" . && echo packed
