#!/usr/bin/env bash
# Nsight Compute on one dense gemm_q call and one cuBLAS call (torch F.linear) of the same shape
# (bench/gemm_profile_one.py): cuBLAS's kernel name (tile, cluster) and, for both, the tensor
# pipe's activity, L2 and L1/crossbar throughput, to tell whether the mainloop is bound by L2
# output or by the SM's ingest (session 7). Usage: LIB=build-final bash scripts/gpu_ncu_vs_cublas.sh [rows]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/python:$PWD/bench FLASHOMNI_LIBRARY=$PWD/${LIB:-build-final}/libflashomni.so
rows=${1:-16896}
metrics=sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,\
lts__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum.per_second,\
l1tex__throughput.avg.pct_of_peak_sustained_elapsed,l1tex__m_xbar2l1tex_read_bytes.sum.per_second,\
lts__t_sectors_srcunit_tex_op_read.sum,dram__bytes_read.sum,launch__cluster_dim_x,\
launch__cluster_dim_y,launch__grid_size,launch__block_size,sm__cycles_elapsed.avg.per_second
for who in ours cublas; do
  regex=regex:sparse_gemm
  [ "$who" = cublas ] && regex='regex:(gemm|xmma|cutlass|sm90)'
  timeout 150 ncu --clock-control none --kernel-name "$regex" --launch-skip 5 --launch-count 1 \
    --section SpeedOfLight --metrics "$metrics" \
    python3 bench/gemm_profile_one.py "$rows" 1 ${who/ours/} > "$OUT/ncu_dense${rows}_$who.txt" 2>&1
  echo "== $who"; grep -E "^  [a-z_]|Duration|SM Frequency|L2 Cache Throughput|L1/TEX Cache|lts__|l1tex__|sm__pipe|launch__|dram__" \
    "$OUT/ncu_dense${rows}_$who.txt" | tr -s ' ' | head -30
done
