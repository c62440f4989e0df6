set -u
R=$OUT; OUT=$R/l; mkdir -p $OUT; export OUT
B=.carry/s18
export PYTHONPATH=$PWD/python:$PWD/bench PYTHONUNBUFFERED=1 FLASHOMNI_LIBRARY=$PWD/$B/libflashomni.so LD_LIBRARY_PATH=$PWD/$B
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee $OUT/device.txt; echo "commit $(cat .carry/commit) $(date -u +%FT%RZ)" | tee -a $OUT/device.txt
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/gpu/test_gemm_plan.py tests/gpu/test_engine_graph.py tests/gpu/test_gemm.py tests/gpu/test_gemm_split.py > $OUT/pytest_plan.log 2>&1; echo "pytest rc $?"; tail -2 $OUT/pytest_plan.log
for run in 1 2; do
timeout 150 python3 bench/gemm_clock_probe.py --ops q o --rows 4608 16896 --densities 0.5 0.25 0.1 --extras 0 --planned --seconds 0.4 --out $OUT/probe$run > $OUT/probe$run.txt 2>&1; echo "probe$run rc $?"
grep "(sustained)" $OUT/probe$run.txt | grep -v dense | sed 's/(sustained)//; s/K=  3072 //' | cut -c1-120
done
tar czf $R/all.tgz -C $OUT . && cp $OUT/pytest_plan.log $OUT/probe1.txt $OUT/probe2.txt $OUT/device.txt $R/ 2>/dev/null; rm -rf $OUT; ls $R
