set -u
B=.carry/new
LD_LIBRARY_PATH=$PWD/$B timeout 100 compute-sanitizer --tool racecheck $B/gemm_check --quick > $OUT/racecheck_quick.log 2>&1; echo "racecheck rc $?"; tail -2 $OUT/racecheck_quick.log
FLASHOMNI_PREBUILT=$B FLASHOMNI_COMMIT=fb20fa4 bash scripts/gpu_validate.sh demo 2>&1 | grep "summary\|OK\|FAIL\|done" | head -8
ls $OUT
