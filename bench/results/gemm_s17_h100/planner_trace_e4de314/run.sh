set -u
export PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee $OUT/device.txt
echo "== planner trace (printf of clock64 stages, 3 calls each: cold then warm)"
FLASHOMNI_LIBRARY=$PWD/.carry/ptrace/libflashomni.so timeout 60 python3 .carry/ncu_p.py 2>&1 | tee $OUT/planner_trace.txt
for lib in head u1; do
  echo "== ncu $lib (cache flush, then none)"
  FLASHOMNI_LIBRARY=$PWD/.carry/$lib/libflashomni.so timeout 100 ncu -k regex:"gemm_planner|elementwise|fill" -c 6 --metrics gpu__time_duration.sum,sm__cycles_elapsed.max,smsp__inst_executed.sum --csv python3 .carry/ncu_p.py > $OUT/ncu_$lib.csv 2>&1
  FLASHOMNI_LIBRARY=$PWD/.carry/$lib/libflashomni.so timeout 100 ncu -k regex:"gemm_planner|elementwise|fill" -c 6 --cache-control none --metrics gpu__time_duration.sum,sm__cycles_elapsed.max,smsp__inst_executed.sum --csv python3 .carry/ncu_p.py > $OUT/ncu_${lib}_nocache.csv 2>&1
  for f in $OUT/ncu_$lib.csv $OUT/ncu_${lib}_nocache.csv; do grep '"gpu__time_duration.sum"\|"smsp__inst' $f | awk -F'","' '{print $5, $(NF-2), $NF}' | cut -c1-120; done
done
echo "== ncu details head"
FLASHOMNI_LIBRARY=$PWD/.carry/head/libflashomni.so timeout 150 ncu -k regex:gemm_planner -c 1 --section LaunchStats --section WarpStateStats --section SchedulerStats --section InstructionStats python3 .carry/ncu_p.py > $OUT/planner_details.txt 2>&1
grep -v "^==PROF==\|^    ---" $OUT/planner_details.txt | grep -i "stall\|cycles\|duration\|issued\|eligible\|active warps\|Registers\|instructions" | head -30
LIB=.carry/head CHECK=0 RUNS="1 2" BENCH=probe ARMS="head:FLASHOMNI_AB_ARM=head u1:LIB=.carry/u1" PROBE_ARGS="--ops q --rows 4608 16896 --densities 0.25 0.1 --seconds 0.5" FLASHOMNI_COMMIT=e4de314 OUT=$OUT/ab timeout 200 bash scripts/gpu_ab_env.sh > $OUT/ab.txt 2>&1; grep "probe\|gemm_q " $OUT/ab.txt
ls $OUT
