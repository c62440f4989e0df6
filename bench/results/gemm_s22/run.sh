#!/usr/bin/env bash
# Session 22's device calls (prepared; see README.txt). Carry .carry/s22c (candidate.diff's
# libflashomni.so + gemm_check) and .carry/s22x (candidate + experiment.diff).
#   PART=1: correctness of the candidate, then its same-call A/B probes (about 9 min).
#   PART=2: the experiment's ablations: drain hook on/off, fp32 staged on/off, prefetch off.
# Logs go to $OUT/all.tgz.
set -uo pipefail
cd "$(dirname "$0")/../../.."
PART=${PART:-1}
C=$PWD/.carry/s22c X=$PWD/.carry/s22x
W=$OUT/w; mkdir -p "$W"
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader |
  tee "$W/device.txt"
echo "tree ${FLASHOMNI_COMMIT:-?} + gemm_s22 diffs, part $PART, $(date -u +%Y-%m-%dT%H:%MZ)" |
  tee -a "$W/device.txt"
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
use() { export FLASHOMNI_LIBRARY=$1/libflashomni.so LD_LIBRARY_PATH=$1; }
check() { # name lib env...
  local name=$1 lib=$2; shift 2
  echo "=== gemm_check $name (t=$(el))"
  use "$lib"
  env "$@" timeout 150 "$lib/gemm_check" > "$W/gemm_check_$name.log" 2>&1
  echo "rc=$?"; grep -v '^\[PASS\]' "$W/gemm_check_$name.log" | tail -4
}
probe() { # name lib cache_dtype rows extras env... ; skipped past 500 s
  local name=$1 lib=$2 dt=$3 rows=$4 extras=$5; shift 5
  [ "$(el)" -gt 500 ] && { echo "skip $name (t=$(el))"; return; }
  use "$lib"
  env "$@" FLASHOMNI_COMMIT="s22-$name" timeout 100 python3 bench/gemm_clock_probe.py --ops o \
    --rows "$rows" --extras $extras --cache-dtype "$dt" --densities 1 0.25 0.1 --planned \
    --seconds 0.25 --out "$W" --tag "$name" > "$W/probe_$name.log" 2>&1 || echo "probe $name failed"
  echo "--- $name (t=$(el))"; grep '(sustained)' "$W/probe_$name.log" | grep planned | head -8
}
if [ "$PART" = 1 ]; then
  check staged "$C"
  check register "$C" FLASHOMNI_GEMM_FP32_STAGED=0
  echo "=== pytest gemm (t=$(el))"
  use "$C"
  timeout 150 python3 -m pytest -q tests/gpu/test_gemm.py tests/gpu/test_gemm_plan.py \
    tests/gpu/test_gemm_split.py tests/gpu/test_gemm_cache_only.py > "$W/pytest_gemm.log" 2>&1
  echo "rc=$?"; tail -3 "$W/pytest_gemm.log"
  for r in 1 2; do
    probe "fp32_on_$r" "$C" float32 4608 0 FLASHOMNI_GEMM_FP32_STAGED=1
    probe "fp32_off_$r" "$C" float32 4608 0 FLASHOMNI_GEMM_FP32_STAGED=0
  done
  probe bf16_4608 "$C" bfloat16 4608 0
  probe fp32_on_16896 "$C" float32 16896 "0 12288" FLASHOMNI_GEMM_FP32_STAGED=1
  probe fp32_off_16896 "$C" float32 16896 "0 12288" FLASHOMNI_GEMM_FP32_STAGED=0
else
  check experiment "$X"
  # bit 16: the staged cache load before the first wgmma (main's placement) against the hook.
  for r in 1 2; do
    probe "bf16_hook_$r" "$X" bfloat16 4608 0 FLASHOMNI_GEMM_ABLATE=0
    probe "bf16_early_$r" "$X" bfloat16 4608 0 FLASHOMNI_GEMM_ABLATE=16
  done
  probe fp32_hook "$X" float32 4608 0 FLASHOMNI_GEMM_ABLATE=0
  probe fp32_early "$X" float32 4608 0 FLASHOMNI_GEMM_ABLATE=16
  # Item 35's hypothesis, on the register path: no consumer read of C (2) with and without the
  # producer's L2 prefetch of it (8); session 20 measured 2 alone at 53.8 / 36.8 us.
  probe fp32_reg_ab2 "$X" float32 4608 0 FLASHOMNI_GEMM_FP32_STAGED=0 FLASHOMNI_GEMM_ABLATE=2
  probe fp32_reg_ab10 "$X" float32 4608 0 FLASHOMNI_GEMM_FP32_STAGED=0 FLASHOMNI_GEMM_ABLATE=10
  probe bf16_ab2 "$X" bfloat16 4608 0 FLASHOMNI_GEMM_ABLATE=2
  echo "=== memcheck (t=$(el))"
  if [ "$(el)" -lt 470 ]; then
    timeout 100 compute-sanitizer --tool memcheck "$C/gemm_check" > "$W/memcheck.log" 2>&1
    echo "rc=$?"; tail -3 "$W/memcheck.log"
  fi
fi
cd "$W" && tar czf "$OUT/all.tgz" . && echo packed
