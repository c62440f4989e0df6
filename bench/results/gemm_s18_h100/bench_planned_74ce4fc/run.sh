set -u
R=$OUT; OUT=$R/l; mkdir -p $OUT; export OUT
B=.carry/s18
export PYTHONPATH=$PWD/python:$PWD/bench PYTHONUNBUFFERED=1 FLASHOMNI_LIBRARY=$PWD/$B/libflashomni.so LD_LIBRARY_PATH=$PWD/$B FLASHOMNI_COMMIT=$(cat .carry/commit)
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee $OUT/device.txt; echo "commit $(cat .carry/commit) $(date -u +%FT%RZ)" | tee -a $OUT/device.txt
timeout 420 python3 bench/gemm_bench.py --planned --tag h100_s18_planned --out $OUT > $OUT/gemm_bench.txt 2>&1; echo "bench rc $?"
grep -v "^device" $OUT/gemm_bench.txt | cut -c1-110
tar czf $R/all.tgz -C $OUT . && cp $OUT/gemm_bench.txt $OUT/*.json $OUT/*.png $OUT/device.txt $R/ 2>/dev/null; rm -rf $OUT; ls $R
