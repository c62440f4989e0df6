#!/usr/bin/env bash
# Runs on the lent GPU machine: the sparse GEMM checks (C++ vs the CPU oracle, compute-sanitizer
# memcheck on a small case, pytest vs torch) and the benchmark; logs and results go to $OUT.
# Uses prebuilt binaries in build-gemm-bin/ when they run there, else builds (CUTLASS headers from
# .carry/cutlass/include). Usage: bash scripts/gpu_gemm.sh [check|bench|all]
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
OUT=${OUT:-/tmp/gemm_out}
mkdir -p "$OUT"
BIN=$PWD/build-gemm-bin
if [ ! -x "$BIN/gemm_check" ] || LD_LIBRARY_PATH=$BIN ldd "$BIN/gemm_check" | grep -q "not found"; then
  FLASHOMNI_BUILD_DIR=build-gemm FLASHOMNI_JOBS=16 \
    FLASHOMNI_CMAKE_ARGS="-DFLASHOMNI_CUTLASS_INCLUDE=$PWD/.carry/cutlass/include -DFLASHOMNI_BUILD_TESTS=OFF" \
    bash scripts/build.sh 2>&1 | tail -5
  mkdir -p "$BIN" && cp build-gemm/libflashomni.so build-gemm/gemm_check "$BIN/"
fi
export LD_LIBRARY_PATH=$BIN FLASHOMNI_LIBRARY=$BIN/libflashomni.so PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw --format=csv | tee "$OUT/device.txt"
rc=0
if [ "$what" != bench ]; then
  timeout 150 "$BIN/gemm_check" 2>&1 | tee "$OUT/gemm_check.log" || rc=1
  timeout 150 compute-sanitizer --tool memcheck "$BIN/gemm_check" --quick >"$OUT/memcheck.log" 2>&1 || rc=1
  tail -4 "$OUT/memcheck.log"
  timeout 120 python3 -m pytest -q tests/gpu/test_gemm.py tests/gpu/test_gemm_cache_only.py 2>&1 | tee "$OUT/pytest.log" | tail -15 || rc=1
fi
if [ "$what" != check ]; then
  timeout 300 python3 bench/gemm_bench.py --out "$OUT" --tag "${BENCH_TAG:-h100}" 2>&1 | tee "$OUT/bench.log" || rc=1
fi
exit $rc
