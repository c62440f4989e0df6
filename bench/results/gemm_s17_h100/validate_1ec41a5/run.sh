set -u
mkdir -p $OUT
FLASHOMNI_PREBUILT=.carry/head FLASHOMNI_COMMIT=1ec41a5 bash scripts/gpu_validate.sh checks pytest demo 2>&1 | tail -30
LIB=.carry/head CHECK=0 RUNS=1 BENCH=probe ARMS="on:FLASHOMNI_AB_ARM=on off:FLASHOMNI_GEMM_PAIR_SPLIT=0 again:FLASHOMNI_AB_ARM=again" PROBE_ARGS="--ops q --rows 4608 --seconds 1.5" FLASHOMNI_COMMIT=1ec41a5 timeout 200 bash scripts/gpu_ab_env.sh 2>&1 | grep -v "^commit" | tail -14
cd $OUT && ls
