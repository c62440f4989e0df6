set -u
R=$OUT; OUT=$R/l; mkdir -p $OUT; export OUT
B=.carry/s18
export PYTHONPATH=$PWD/python:$PWD/bench PYTHONUNBUFFERED=1 FLASHOMNI_LIBRARY=$PWD/$B/libflashomni.so LD_LIBRARY_PATH=$PWD/$B
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee $OUT/device.txt; echo "commit $(cat .carry/commit) $(date -u +%FT%RZ)" | tee -a $OUT/device.txt
# Kernels 2, 4, 6 of the sparse GEMM (the second call of each case), full sections.
timeout 300 ncu -k regex:sparse_gemm_kernel --launch-skip 1 --launch-count 5 --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section LaunchStats --section Occupancy python3 .carry/ncu_d.py > $OUT/ncu_d.txt 2>&1; echo "ncu rc $?"
grep -v "^==PROF==" $OUT/ncu_d.txt | grep -E "sparse_gemm|Duration|DRAM Throughput|L2 Cache Throughput|Memory Throughput|Compute \(SM\)|Stall|Issued Warp|No Eligible|Active Warps Per|L1/TEX Hit|L2 Hit|Mem Busy|Max Bandwidth|Elapsed Cycles|Registers" | cut -c1-110 | head -120
tar czf $R/all.tgz -C $OUT . && cp $OUT/ncu_d.txt $OUT/device.txt $R/ 2>/dev/null; rm -rf $OUT; ls $R
