#!/usr/bin/env bash
# One lent-GPU call comparing settings of ONE library that are read from the environment at every
# call (FLASHOMNI_GEMM_PREFETCH, FLASHOMNI_GEMM_SPLIT_K, ...): gemm_check of the library, then per
# run and arm the clock64 trace (when TRACE names a library built with scripts/gemm_trace.patch)
# and bench/gemm_bench.py (BENCH=probe: the sustained bench/gemm_clock_probe.py instead, with
# PROBE_ARGS), arms alternating so drift in clocks hits them alike.
# An arm "name:LIB=<dir>" runs another library instead (a previous build) with no setting.
# Usage: LIB=build-x TRACE=build-trace-x ARMS="off:FLASHOMNI_GEMM_PREFETCH=0 on:FLASHOMNI_GEMM_PREFETCH=8" \
#   FLASHOMNI_COMMIT=<sha> bash scripts/gpu_ab_env.sh
# Session 14's staged-bias A/B: LIB=.carry/bias CHECK=0 RUNS=1 BENCH=probe \
#   ARMS="staged:FLASHOMNI_AB_ARM=staged global:FLASHOMNI_GEMM_BIAS_STAGED=0 again:FLASHOMNI_AB_ARM=again" \
#   PROBE_ARGS="--ops q o --densities 1 0.25 --extras 0 --seconds 0.8" bash scripts/gpu_ab_env.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
W=$OUT/w  # per-arm files, packed into one archive at the end (the device tool returns few files)
mkdir -p "$W"
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
LIB=${LIB:?LIB=<build dir>} ARMS=${ARMS:?ARMS=\"name:VAR=value ...\"}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt"
echo "commit ${FLASHOMNI_COMMIT:-unknown}, $(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$OUT/device.txt"
rc=0
if [ "${CHECK:-1}" = 1 ]; then
  for arm in $ARMS; do
    name=${arm%%:*} setting=${arm#*:} lib=$LIB
    case $setting in LIB=*) lib=${setting#LIB=} setting=FLASHOMNI_AB_ARM=$name ;; esac
    echo "=== gemm_check $name"
    env "$setting" LD_LIBRARY_PATH=$PWD/$lib timeout 200 "$lib/gemm_check" \
      > "$OUT/gemm_check_$name.log" 2>&1 || rc=1
    grep -v '^\[PASS\]' "$OUT/gemm_check_$name.log" | tail -4
  done
fi
for run in ${RUNS-1 2}; do
  for arm in $ARMS; do
    name=${arm%%:*} setting=${arm#*:} lib=$LIB
    case $setting in LIB=*) lib=${setting#LIB=} setting=FLASHOMNI_AB_ARM=$name ;; esac
    if [ -n "${TRACE:-}" ]; then
      echo "=== trace $name run $run"
      env "$setting" FLASHOMNI_LIBRARY=$PWD/$TRACE/libflashomni.so timeout 200 \
        python3 bench/gemm_trace_probe.py --out "$W/trace_${name}_run${run}" \
        ${TRACE_CASES:+--cases $TRACE_CASES} > "$W/trace_${name}_run${run}.log" 2>&1 || rc=1
      grep -o '^[0-9.:]* {"ghz": [0-9.]*\|"kblock_efficiency_n256": [0-9.a-z]*\|"ms": \[[0-9.]*' \
        "$W/trace_${name}_run${run}.log" | paste - - - | head -12
    fi
    case ${BENCH:-1} in
      1) kind=bench script=bench/gemm_bench.py args=${BENCH_ARGS:-} pick=${BENCH_GREP:-gemm_q }
        lines=${BENCH_LINES:-16} ;;
      probe) kind=probe script=bench/gemm_clock_probe.py args=${PROBE_ARGS:-} pick='\(sustained\)'
        lines=${BENCH_LINES:-200} ;;
      *) kind= ;;
    esac
    if [ -n "$kind" ]; then
      echo "=== $kind $name run $run"
      env "$setting" FLASHOMNI_COMMIT=${FLASHOMNI_COMMIT:-}-$name \
        FLASHOMNI_LIBRARY=$PWD/$lib/libflashomni.so timeout 240 python3 $script \
        --out "$W" --tag "${name}_run${run}" $args > "$W/${kind}_${name}_run${run}.log" 2>&1 ||
        { echo "$kind failed"; rc=1; }
      grep -E -- "$pick" "$W/${kind}_${name}_run${run}.log" | head -"$lines"
    fi
  done
done
tar czf "$OUT/ab_env.tgz" -C "$OUT" w && rm -rf "$W"
exit $rc
