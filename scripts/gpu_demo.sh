#!/usr/bin/env bash
# GPU smoke run of flashomni_demo (lent H100): the demo with --backend cuda (bf16 storage) and, on
# the same inputs, --backend cpu --bf16, for two configurations (d = 64 text first; d = 128 text
# last). The policy runs on the host from the same bf16 Q/K, so both runs must agree on every step's
# kind and densities; every rel_err must be finite, update steps (dense kernel vs the oracle: bf16
# rounding only, ~2e-3) below 1e-2, and each step's error within 1e-2 + 10% of the CPU backend's.
# At least one dispatch step must run (steps > 8, the warm-up). Also checks that --backend auto
# picks cuda. Logs: $OUT/gpu_demo_*.txt.
# Usage: bash scripts/gpu_demo.sh [steps] (default 20; about 20 s after the build on 16 cores)
#   FLASHOMNI_PREBUILT=dir  use dir/libflashomni.so and dir/flashomni_demo instead of building.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
STEPS=${1:-20}
BUILD_DIR=${FLASHOMNI_BUILD_DIR:-build}
BIN=${FLASHOMNI_PREBUILT:-$BUILD_DIR}
step() { echo "=== $1 ($(date +%T))"; }

if [ -z "${FLASHOMNI_PREBUILT:-}" ]; then
  step build
  source scripts/env.sh
  fo_gpu_build "$OUT/gpu_demo_build.log" flashomni_demo
fi
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
export LD_LIBRARY_PATH="$BIN:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1

step "auto picks cuda"
timeout 60 "$BIN/flashomni_demo" --backend auto --steps 2 --no-reference > "$OUT/gpu_demo_auto.txt" 2>&1
grep '^backend:' "$OUT/gpu_demo_auto.txt"
status=0
grep -q '^backend: cuda' "$OUT/gpu_demo_auto.txt" || { echo "FAIL: auto did not pick cuda"; status=1; }

# Compares a cuda run with the cpu --bf16 run of the same options (step lines: step kind q_dens
# kv_dens pair ... rel_err, rel_err last).
compare() {
  python3 - "$1" "$2" <<'EOF'
import math, sys
def steps(path):
    rows = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 8 and f[0].isdigit() and f[1] in ("update", "dispatch", "reuse"):
            rows[int(f[0])] = (f[1], f[2], f[3], f[4], float(f[-1]))
    return rows
gpu, cpu = steps(sys.argv[1]), steps(sys.argv[2])
bad = [] if gpu and gpu.keys() == cpu.keys() else ["step lines differ: %d vs %d" % (len(gpu), len(cpu))]
worst = 0.0
for s in sorted(gpu.keys() & cpu.keys()):
    g, c = gpu[s], cpu[s]
    if g[:4] != c[:4]:
        bad.append("step %d: kind/densities %s (cuda) vs %s (cpu)" % (s, g[:4], c[:4]))
    if not math.isfinite(g[4]):
        bad.append("step %d: rel_err %s" % (s, g[4]))
        continue
    if g[0] == "update" and g[4] >= 1e-2:
        bad.append("step %d: update rel_err %.2e >= 1e-2" % (s, g[4]))
    if abs(g[4] - c[4]) > 1e-2 + 0.1 * c[4]:
        bad.append("step %d: rel_err %.2e (cuda) vs %.2e (cpu)" % (s, g[4], c[4]))
    worst = max(worst, abs(g[4] - c[4]))
if not any(r[0] == "dispatch" for r in gpu.values()):
    bad.append("no dispatch step ran (use more steps than the warm-up)")
for b in bad:
    print("FAIL:", b)
print("%s: %d steps, max |rel_err(cuda) - rel_err(cpu bf16)| = %.2e" % ("FAIL" if bad else "OK", len(gpu), worst))
sys.exit(1 if bad else 0)
EOF
}

for config in "default:" "hd128-text-last:--head-dim 128 --heads 2 --text-last"; do
  name=${config%%:*}
  args=${config#*:}
  step "$name: --backend cuda $args"
  # shellcheck disable=SC2086
  timeout 120 "$BIN/flashomni_demo" --backend cuda --steps "$STEPS" $args \
    > "$OUT/gpu_demo_${name}_cuda.txt" 2>&1 || { tail -5 "$OUT/gpu_demo_${name}_cuda.txt"; status=1; continue; }
  { sed -n 3,4p "$OUT/gpu_demo_${name}_cuda.txt"; tail -2 "$OUT/gpu_demo_${name}_cuda.txt"; }
  # shellcheck disable=SC2086
  timeout 120 "$BIN/flashomni_demo" --backend cpu --bf16 --steps "$STEPS" $args \
    > "$OUT/gpu_demo_${name}_cpu_bf16.txt" 2>&1 || { tail -5 "$OUT/gpu_demo_${name}_cpu_bf16.txt"; status=1; continue; }
  compare "$OUT/gpu_demo_${name}_cuda.txt" "$OUT/gpu_demo_${name}_cpu_bf16.txt" || status=1
done
step "done (status $status)"
exit $status
