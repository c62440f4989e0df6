#!/usr/bin/env bash
# Same-call A/B of two builds of libflashomni on the lent GPU: bench/gemm_bench.py with the same
# arguments, alternated new / old / new / old (burst timings drift with the clock; alternating
# shows the spread next to the difference). JSON and logs go to $OUT as gemm_<tag>_{new,old}_runN.
# Usage: FLASHOMNI_AB_OLD=build-old FLASHOMNI_AB_NEW=build-bin FLASHOMNI_COMMIT=<sha> \
#          FLASHOMNI_AB_OLD_COMMIT=<baseline sha> bash scripts/gpu_ab_gemm.sh TAG [gemm_bench args...]
# (each JSON's "commit" names the library its arm ran).
set -uo pipefail
cd "$(dirname "$0")/.."
tag=${1:?usage: gpu_ab_gemm.sh TAG [gemm_bench args...]}
shift
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
rc=0
for run in 1 2; do
  for arm in new old; do
    lib=${FLASHOMNI_AB_NEW:-build-bin} commit=${FLASHOMNI_COMMIT:-}
    if [ "$arm" = old ]; then
      lib=${FLASHOMNI_AB_OLD:?set FLASHOMNI_AB_OLD to the baseline build dir}
      commit=${FLASHOMNI_AB_OLD_COMMIT:-baseline}
    fi
    echo "=== $arm run $run ($lib)"
    FLASHOMNI_COMMIT=$commit FLASHOMNI_LIBRARY=$PWD/$lib/libflashomni.so timeout 300 python3 bench/gemm_bench.py \
      --out "$OUT" --tag "${tag}_${arm}_run${run}" "$@" > "$OUT/gemm_${tag}_${arm}_run${run}.log" 2>&1 ||
      { echo "bench failed ($arm run $run)"; rc=1; }
    tail -2 "$OUT/gemm_${tag}_${arm}_run${run}.log"
  done
done
exit $rc
