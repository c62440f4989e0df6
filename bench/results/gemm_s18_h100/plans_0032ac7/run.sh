set -u
R=$OUT; OUT=$R/l; mkdir -p $OUT; export OUT
B=.carry/s18
FLASHOMNI_PREBUILT=$B FLASHOMNI_COMMIT=$(cat .carry/commit) bash scripts/gpu_validate.sh checks pytest 2>&1 | grep -v Warning | tail -8
export PYTHONPATH=$PWD/python:$PWD/bench PYTHONUNBUFFERED=1 FLASHOMNI_LIBRARY=$PWD/$B/libflashomni.so LD_LIBRARY_PATH=$PWD/$B
echo "== probe"
timeout 200 python3 bench/gemm_clock_probe.py --ops q o --rows 4608 16896 --densities 0.25 0.1 --extras 0 12288 --planned --seconds 0.4 --out $OUT/probe > $OUT/probe.txt 2>&1; echo "probe rc $?"
grep "(sustained)" $OUT/probe.txt | sed 's/(sustained)//' | cut -c1-150
echo "== memcheck of the plan tests"
timeout 150 compute-sanitizer --tool memcheck python3 -m pytest -q -p no:cacheprovider tests/gpu/test_gemm_plan.py > $OUT/memcheck_plan.log 2>&1; echo "memcheck rc $?"; tail -3 $OUT/memcheck_plan.log
tar czf $R/all.tgz -C $OUT . && cp $OUT/gemm_check.log $OUT/pytest_gpu.log $OUT/probe.txt $OUT/memcheck_plan.log $R/ 2>/dev/null; rm -rf $OUT; ls $R
