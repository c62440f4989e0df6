#!/usr/bin/env bash
# GPU run of the end-to-end benchmark (bench/e2e_bench.py) on the lent H100: installs the carried
# diffusers wheels (README recipe, pip --target), builds libflashomni with CUDA (or uses a
# prebuilt one), then runs FLUX and HunyuanVideo as separate, time-limited invocations so that
# one failure keeps the other's JSON. Logs and JSON go to $OUT. Fails loudly (non-zero exit).
#
# Carry: .whl (diffusers-*.whl, importlib_metadata-*.whl), .carry (CUTLASS headers for the build).
# Knobs (environment):
#   FLASHOMNI_PREBUILT=dir   use dir/libflashomni.so instead of building
#   E2E_MODELS="flux hunyuan"   E2E_STEPS=50   E2E_ARGS="..." (extra bench args, both models)
#   E2E_FLUX_ARGS / E2E_HY_ARGS / E2E_WAN_ARGS  per-model args, e.g. E2E_HY_ARGS="--hy-double 2
#     --hy-single 4", E2E_WAN_ARGS="--wan-blocks 30" (E2E_MODELS="wan": Wan2.1-1.3B shape)
#   E2E_FLUX_TIMEOUT=200 E2E_HY_TIMEOUT=260 E2E_WAN_TIMEOUT=260 (seconds)
#   E2E_SMOKE=1: CPU-only build + --smoke-cpu
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
T0=$(date +%s)
step() { echo "=== $1 ($(date +%T), +$(($(date +%s) - T0)) s)"; }
die() { echo "FAILED: $*" >&2; exit 1; }

step env
if [ -z "${E2E_SMOKE:-}" ]; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$OUT/env.txt"
fi
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' \
  2>&1 | tee -a "$OUT/env.txt" || die "python3 with torch not found"

step "install diffusers (carried wheels)"
SITE=${E2E_SITE:-/tmp/site}
shopt -s nullglob
wheels=(.whl/diffusers-*.whl .whl/importlib_metadata-*.whl)
shopt -u nullglob
[ ${#wheels[@]} -eq 2 ] || die "expected one diffusers and one importlib_metadata wheel in .whl/, found: ${wheels[*]:-none} (carry .whl)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "${wheels[@]}" || die "pip install of ${wheels[*]}"
export PYTHONPATH="$PWD/python:$SITE${PYTHONPATH:+:$PYTHONPATH}"
python3 -c 'import diffusers; print("diffusers", diffusers.__version__)' || die "import diffusers"

if [ -n "${FLASHOMNI_PREBUILT:-}" ]; then
  LIB=$PWD/$FLASHOMNI_PREBUILT/libflashomni.so
  [ -f "$LIB" ] || die "FLASHOMNI_PREBUILT=$FLASHOMNI_PREBUILT has no libflashomni.so"
else
  BUILD_DIR=${FLASHOMNI_BUILD_DIR:-build-e2e-gpu}
  if [ -n "${E2E_SMOKE:-}" ]; then
    CMAKE_ARGS="-DFLASHOMNI_WITH_CUDA=OFF"
  else
    CMAKE_ARGS="-DFLASHOMNI_WITH_CUDA=ON -DFLASHOMNI_CUTLASS_INCLUDE=${FLASHOMNI_CUTLASS_INCLUDE:-$PWD/.carry/cutlass/include}"
  fi
  step "build libflashomni ($BUILD_DIR)"
  source scripts/env.sh
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHOMNI_BUILD_TESTS=OFF \
    $CMAKE_ARGS > "$OUT/build.log" 2>&1 &&
    cmake --build "$BUILD_DIR" -j "${FLASHOMNI_JOBS:-16}" --target flashomni >> "$OUT/build.log" 2>&1 ||
    { tail -40 "$OUT/build.log"; die "build (log: $OUT/build.log)"; }
  tail -1 "$OUT/build.log"
  LIB=$PWD/$BUILD_DIR/libflashomni.so
fi
export FLASHOMNI_LIBRARY=$LIB
python3 -c 'import flashomni as fo; print("flashomni", fo.version(), "cuda kernels:", fo.has_cuda())' ||
  die "loading $LIB"

status=0
STEPS=${E2E_STEPS:-50}
for model in ${E2E_MODELS:-flux hunyuan}; do
  case $model in
    flux) extra=${E2E_FLUX_ARGS:-}; limit=${E2E_FLUX_TIMEOUT:-200} ;;
    hunyuan) extra=${E2E_HY_ARGS:-}; limit=${E2E_HY_TIMEOUT:-260} ;;
    wan) extra=${E2E_WAN_ARGS:-}; limit=${E2E_WAN_TIMEOUT:-260} ;;
    *) die "unknown model $model in E2E_MODELS" ;;
  esac
  smoke=${E2E_SMOKE:+--smoke-cpu}
  step "bench $model ($STEPS steps, limit ${limit} s)"
  timeout "$limit" python3 bench/e2e_bench.py --models "$model" --steps "$STEPS" --out "$OUT" \
    --tag "${E2E_TAG:-h100}_$model" $smoke ${E2E_ARGS:-} $extra 2>&1 | tee "$OUT/e2e_$model.log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    echo "bench $model FAILED (rc $rc$([ "$rc" -eq 124 ] && echo ': timed out'))" >&2
    status=1
    [ "$rc" -eq 2 ] && break  # a FlashOmni GPU entry point is missing: the next model needs it too
  fi
done
step "done (status $status)"
exit $status
