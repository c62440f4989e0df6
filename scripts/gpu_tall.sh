#!/usr/bin/env bash
# One lent-GPU call for GEMM-Q's tall items (plan_q_paired): gemm_check of the new library (its
# cases compare tall items with FLASHOMNI_GEMM_TALL=0 bit for bit), memcheck --quick, the
# kernels' spill / HGMMA counts from the SASS, gemm_q benches alternating tall / the same library
# with FLASHOMNI_GEMM_TALL=0 / the previous library (Sq draw 0 twice, then once per draw in
# SEEDS), and the GEMM pytest files of tests/gpu. Most important first (a call may time out).
# Before the call, here: build this tree and the library to compare with (scripts/build.sh, CUDA
# on), copy each one's libflashomni.so and gemm_check into .carry/new and .carry/base (ignored),
# and name both in the call's carry.
# Usage: NEW=.carry/new BASE=.carry/base SEEDS="1" FLASHOMNI_COMMIT=<sha> bash scripts/gpu_tall.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
NEW=${NEW:-.carry/new} BASE=${BASE:-.carry/base}
rc=0
echo "=== gemm_check"
LD_LIBRARY_PATH=$PWD/$NEW timeout 240 "$NEW/gemm_check" > "$OUT/gemm_check.log" 2>&1 || rc=1
grep -v '^\[PASS\]' "$OUT/gemm_check.log" | tail -6
bench_seed() {  # $1: Sq draw, $2: runs
  OUT=$OUT/seed$1 LIB=$NEW CHECK=0 RUNS="$2" BENCH_ARGS="--ops q --seed $1" \
    ARMS="tall:FLASHOMNI_GEMM_TALL=1 off:FLASHOMNI_GEMM_TALL=0 base:LIB=$BASE" \
    bash scripts/gpu_ab_env.sh || rc=1
}
bench_seed 0 "${RUNS0:-1 2}"
echo "=== memcheck --quick"
LD_LIBRARY_PATH=$PWD/$NEW timeout 200 compute-sanitizer --tool memcheck "$NEW/gemm_check" --quick \
  > "$OUT/memcheck.log" 2>&1 || rc=1
tail -3 "$OUT/memcheck.log"
echo "=== SASS (per GEMM kernel: local loads / stores, HGMMA)"
cuobjdump -sass "$NEW/libflashomni.so" 2>/dev/null | awk '
  /Function :/ { f = $3 } f ~ /sparse_gemm_kernel/ && /LDL/ { l[f]++ }
  f ~ /sparse_gemm_kernel/ && /STL/ { s[f]++ } f ~ /sparse_gemm_kernel/ && /HGMMA/ { g[f]++ }
  END { for (k in g) print k, "LDL", l[k] + 0, "STL", s[k] + 0, "HGMMA", g[k] }' | tee "$OUT/sass.txt"
for seed in ${SEEDS:-1}; do bench_seed "$seed" 1; done
echo "=== pytest tests/gpu (GEMM)"
FLASHOMNI_LIBRARY=$PWD/$NEW/libflashomni.so PYTHONPATH=$PWD/python timeout 150 python3 -m pytest -q \
  tests/gpu/test_gemm.py tests/gpu/test_gemm_split.py tests/gpu/test_gemm_cache_only.py \
  > "$OUT/pytest.log" 2>&1 || rc=1
tail -3 "$OUT/pytest.log"
exit $rc
