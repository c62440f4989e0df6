#!/usr/bin/env bash
# One lent-GPU call (session 6): FLUX end to end with the forecast of C stored in the model's
# dtype (EngineConfig.forecast_dtype None, the new default) and in fp32 (as before), the same
# library, alternated; logs and JSON in $OUT. Usage: NEW=build-split bash scripts/gpu_forecast_ab.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
NEW=${NEW:-build-split}
mkdir -p "$OUT"
rc=0
for fc in ${ARMS:-storage float32}; do
  FLASHOMNI_PREBUILT=$NEW E2E_MODELS=${E2E_MODELS:-flux} E2E_TAG=forecast_$fc OUT=$OUT \
    E2E_ARGS="--forecast-dtype $fc" bash scripts/gpu_e2e.sh > "$OUT/e2e_forecast_$fc.log" 2>&1 || rc=1
  grep -E "speedup|per schedule step|GPU kernel ms|PSNR" "$OUT/e2e_forecast_$fc.log"
done
exit $rc
