#!/usr/bin/env bash
# One lent-GPU call for the K split's owner choice (session 6): gemm_check, a quick memcheck, the
# GPU pytest suites, and FLUX end to end with the split on and off (same library,
# FLASHOMNI_GEMM_SPLIT_K=0), logs and JSON in $OUT.
# Usage: NEW=build-split FLASHOMNI_COMMIT=<sha> bash scripts/gpu_splitk_e2e.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
NEW=${NEW:-build-split}
mkdir -p "$OUT"
rc=0
MEMCHECK=1 RUNS= OUT=$OUT NEW=$NEW OLD=$NEW bash scripts/gpu_ab_splitk.sh || rc=1
FLASHOMNI_PREBUILT=$NEW OUT=$OUT bash scripts/gpu_validate.sh pytest > "$OUT/validate.log" 2>&1 || rc=1
tail -4 "$OUT/validate.log"
for split in 4 0; do
  FLASHOMNI_GEMM_SPLIT_K=$split FLASHOMNI_PREBUILT=$NEW E2E_MODELS=flux E2E_TAG=split$split OUT=$OUT \
    bash scripts/gpu_e2e.sh > "$OUT/e2e_split$split.log" 2>&1 || rc=1
  grep -E "speedup|GPU kernel ms|PSNR" "$OUT/e2e_split$split.log"
done
exit $rc
