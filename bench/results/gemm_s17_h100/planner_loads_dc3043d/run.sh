set -u
R=$OUT; OUT=$R/l; mkdir -p $OUT; export OUT
B=.carry/new
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv | tee $OUT/smi.txt
FLASHOMNI_PREBUILT=$B FLASHOMNI_COMMIT=wip bash scripts/gpu_validate.sh checks pytest 2>&1 | grep -v Warning | tail -6
LD_LIBRARY_PATH=$PWD/$B timeout 150 compute-sanitizer --tool memcheck $B/gemm_check --quick > $OUT/memcheck_quick.log 2>&1; echo "memcheck rc $?"; tail -2 $OUT/memcheck_quick.log
LIB=$B CHECK=0 RUNS="1 2" BENCH=probe ARMS="new:FLASHOMNI_AB_ARM=new old:LIB=.carry/head" PROBE_ARGS="--ops q o --rows 4608 16896 --densities 0.5 0.25 0.1 --extras 0 --seconds 0.5" FLASHOMNI_COMMIT=wip timeout 300 bash scripts/gpu_ab_env.sh > $OUT/ab.txt 2>&1; grep "probe\|gemm_" $OUT/ab.txt
FLASHOMNI_LIBRARY=$PWD/$B/libflashomni.so LD_LIBRARY_PATH=$PWD/$B PYTHONPATH=$PWD/python timeout 150 ncu -k regex:"gemm_planner|sparse_gemm" --metrics gpu__time_duration.sum,sm__cycles_elapsed.max --csv python3 .carry/ncu_q.py > $OUT/ncu_q.csv 2> $OUT/ncu_q.err; echo "ncu rc $?"; grep -c gpu__time $OUT/ncu_q.csv
tar czf $R/all.tgz -C $OUT . && cp $OUT/gemm_check.log $OUT/pytest_gpu.log $OUT/ncu_q.csv $R/ 2>/dev/null; rm -rf $OUT; ls $R
