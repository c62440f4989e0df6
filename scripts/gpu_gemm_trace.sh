#!/usr/bin/env bash
# One lent-GPU call: bench/gemm_trace_probe.py on a library built with scripts/gemm_trace.patch
# (per-tile clock64 events of the GEMM kernel's consumers). Build it here first, then carry it:
#   source scripts/env.sh && git apply scripts/gemm_trace.patch &&
#   BUILD_DIR=build-trace fo_gpu_build /tmp/trace_build.log; git apply -R scripts/gemm_trace.patch
# The patch is written against the kernel as committed; regenerate it after kernel changes.
# Usage: TRACE=build-trace FLASHOMNI_COMMIT=<sha> bash scripts/gpu_gemm_trace.sh [cases...]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt"
echo "commit ${FLASHOMNI_COMMIT:-unknown}, $(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$OUT/device.txt"
FLASHOMNI_LIBRARY=$PWD/${TRACE:-build-trace}/libflashomni.so timeout 300 \
  python3 bench/gemm_trace_probe.py --out "$OUT/trace" ${1:+--cases "$@"} 2>&1 | tee "$OUT/trace.log"
# A second library built with kMinSplitKBlocks = 16 (gemm_params.h), so K = 3072 tiles split too.
if [ -n "${TRACE16:-}" ]; then
  FLASHOMNI_LIBRARY=$PWD/$TRACE16/libflashomni.so timeout 300 python3 bench/gemm_trace_probe.py \
    --out "$OUT/trace16" --cases 4608:1 4608:0.25 4608:0.1 2>&1 | tee "$OUT/trace16.log"
fi
