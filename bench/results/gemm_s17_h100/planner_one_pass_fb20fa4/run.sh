set -u
R=$OUT; OUT=$R/l; mkdir -p $OUT; export OUT
B=.carry/new
FLASHOMNI_PREBUILT=$B FLASHOMNI_COMMIT=fb20fa4 bash scripts/gpu_validate.sh checks pytest 2>&1 | grep -v Warning | tail -5
LD_LIBRARY_PATH=$PWD/$B timeout 150 compute-sanitizer --tool memcheck $B/gemm_check --quick > $OUT/memcheck_quick.log 2>&1; echo "memcheck rc $?"; tail -2 $OUT/memcheck_quick.log
PYTHONPATH=$PWD/python FLASHOMNI_LIBRARY=$PWD/.carry/ptrace/libflashomni.so timeout 60 python3 .carry/ncu_p.py 2>&1 | tee $OUT/planner_trace_new.txt
LIB=$B CHECK=0 RUNS="1 2" BENCH=probe ARMS="new:FLASHOMNI_AB_ARM=new old:LIB=.carry/head" PROBE_ARGS="--ops q o --rows 4608 16896 --densities 0.25 0.1 --extras 0 --seconds 0.4" FLASHOMNI_COMMIT=fb20fa4 OUT=$OUT/ab timeout 240 bash scripts/gpu_ab_env.sh > $OUT/ab.txt 2>&1; grep "probe\|gemm_" $OUT/ab.txt | sed 's/K=  3072 //; s/(sustained)//'
tar czf $R/all.tgz -C $OUT . && cp $OUT/gemm_check.log $OUT/pytest_gpu.log $OUT/ab.txt $OUT/planner_trace_new.txt $R/ 2>/dev/null; rm -rf $OUT; ls $R
