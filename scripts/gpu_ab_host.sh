#!/usr/bin/env bash
# One lent-GPU call: host-side A/B of the Python layer. Runs bench/host_overhead.py and the FLUX
# end-to-end benchmark (--no-split) with the current python/ and with an older copy of the
# package (AB_OLD_PYTHON, default .carry/ab_old/python: `git archive <commit> python | tar -x -C
# .carry/ab_old`), new / old alternated, the same libflashomni for both (FLASHOMNI_PREBUILT,
# default build-gpu). Carry build-gpu, .whl, .carry. Logs and JSON under $OUT.
#   AB_TAG=ab (file names)  AB_ROUNDS=2  AB_ARGS="..." (extra e2e arguments, e.g. --dense-fallback)  AB_STEPS=50
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:-$PWD/gpu-out}
BIN=${FLASHOMNI_PREBUILT:-build-gpu}
OLD=${AB_OLD_PYTHON:-.carry/ab_old/python}
mkdir -p "$OUT"
export LD_LIBRARY_PATH=$PWD/$BIN FLASHOMNI_LIBRARY=$PWD/$BIN/libflashomni.so
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .whl/*.whl > /dev/null 2>&1
status=0
for round in $(seq 1 "${AB_ROUNDS:-2}"); do
  for arm in new old; do
    py=$PWD/python
    [ "$arm" = old ] && py=$PWD/$OLD
    export PYTHONPATH=$py:$PWD/bench:/tmp/site
    echo "=== round $round $arm ($(date +%T))"
    [ "$round" = 1 ] && { timeout 120 python3 bench/host_overhead.py --out "$OUT/host_$arm" \
      2>&1 | tee "$OUT/host_overhead_$arm.log" || status=1; }
    timeout 150 python3 bench/e2e_bench.py --models flux --steps "${AB_STEPS:-50}" --no-split \
      --out "$OUT" --tag "${AB_TAG:-ab}_${arm}_r$round" ${AB_ARGS:-} > "$OUT/${AB_TAG:-ab}_e2e_${arm}_r$round.log" 2>&1 ||
      { echo "e2e $arm FAILED"; status=1; }
    grep -E "total|speedup|PSNR|layer-steps" "$OUT/${AB_TAG:-ab}_e2e_${arm}_r$round.log"
  done
done
exit $status
