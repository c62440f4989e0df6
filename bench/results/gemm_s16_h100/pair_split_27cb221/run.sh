set -u
mkdir -p $OUT
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/device.txt
for i in 1 2 3; do .carry/dsmem/dsmem_probe; done > $OUT/dsmem_probe.txt 2>&1; cat $OUT/dsmem_probe.txt | head -30
LD_LIBRARY_PATH=$PWD/.carry/pair timeout 200 .carry/pair/gemm_check > $OUT/gemm_check.log 2>&1; echo "gemm_check rc $?"
grep -v '^\[PASS\]' $OUT/gemm_check.log | tail -6; grep "pair split" $OUT/gemm_check.log | head -12
LD_LIBRARY_PATH=$PWD/.carry/pair timeout 150 compute-sanitizer --tool memcheck .carry/pair/gemm_check --quick > $OUT/memcheck_quick.log 2>&1; echo "memcheck rc $?"; tail -3 $OUT/memcheck_quick.log
LIB=.carry/pair CHECK=0 RUNS="1 2" BENCH=probe ARMS="pair:FLASHOMNI_GEMM_PAIR_SPLIT=1 halves:FLASHOMNI_GEMM_PAIR_SPLIT=0" PROBE_ARGS="--ops q --rows 4608 16896 --seconds 1.0" timeout 300 bash scripts/gpu_ab_env.sh 2>&1 | tail -40
LD_LIBRARY_PATH=$PWD/.carry/pair timeout 100 compute-sanitizer --tool racecheck .carry/pair/gemm_check --quick > $OUT/racecheck_quick.log 2>&1; echo "racecheck rc $?"; tail -3 $OUT/racecheck_quick.log
