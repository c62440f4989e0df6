"""FlashOmni: cuBLAS (torch linear) against our dense gemm_q under sustained load, with the SM
clock and power nvidia-smi reports meanwhile. The graph-replay benchmark (gemm_bench.py) times
short bursts, whose clock depends on what ran just before; a diffusion model keeps the GPU busy
for seconds, at its power cap. Each op runs back to back for --seconds, in the order cuBLAS,
ours, cuBLAS, ours, at each M; a phase's time is its total GPU time over its calls. JSON and
a log line per phase go to --out.

    PYTHONPATH=python:bench FLASHOMNI_LIBRARY=build/libflashomni.so \
        python3 bench/gemm_clock_probe.py
"""

import argparse
import csv
import datetime
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import flashomni as fo

HEADS, K = 24, 3072


def phase(fn, seconds):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0, calls = time.time(), 0
    start.record()
    while time.time() - t0 < seconds:
        for _ in range(20):
            fn()
        calls += 20
        torch.cuda.synchronize()
    end.record()
    end.synchronize()
    return t0, time.time(), start.elapsed_time(end) / calls, calls


def smi_samples(path, t0, t1):
    """(clock MHz, power W) samples of the nvidia-smi CSV inside [t0, t1] (unix seconds)."""
    out = []
    with open(path) as f:
        for row in csv.reader(f):
            try:
                t = datetime.datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                if t0 <= t <= t1:
                    out.append((float(row[1].split()[0]), float(row[2].split()[0])))
            except (ValueError, IndexError):
                continue
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[4608, 16896, 33792])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--tag", default="h100")
    args = ap.parse_args()
    smi_path = os.path.join(tempfile.mkdtemp(), "smi.csv")
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=timestamp,clocks.sm,power.draw",
                            "--format=csv,noheader", "-lms", "100"],
                           stdout=open(smi_path, "w"), stderr=subprocess.DEVNULL)
    rows = []
    try:
        for m in args.rows:
            x = torch.randn(m, K, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(HEADS * 128, K, device="cuda", dtype=torch.bfloat16) / 55
            out = torch.empty(m, HEADS * 128, device="cuda", dtype=torch.bfloat16)
            ops = {"cublas_linear": lambda: torch.nn.functional.linear(x, w),
                   "gemm_q_dense": lambda: fo.gemm_q(x, w, None, heads=HEADS, out=out)}
            for rep in range(2):
                for op, fn in ops.items():
                    t0, t1, ms, calls = phase(fn, args.seconds)
                    rows.append(dict(op=op, M=m, rep=rep, ms=ms, calls=calls,
                                     tflops=2.0 * m * K * HEADS * 128 / ms / 1e9, t0=t0, t1=t1))
                    time.sleep(0.3)
    finally:
        time.sleep(0.3)
        smi.terminate()
        smi.wait()
    for r in rows:
        s = smi_samples(smi_path, r["t0"] + 0.5, r["t1"])  # past the first half second
        r["smi_samples"] = len(s)
        r["sm_clock_mhz"] = sum(c for c, _ in s) / len(s) if s else None
        r["power_w"] = sum(p for _, p in s) / len(s) if s else None
        print(f"{r['op']:14s} M={r['M']:6d} rep {r['rep']}: {r['ms']:.4f} ms {r['tflops']:5.0f} "
              f"TF/s  clock {r['sm_clock_mhz'] or 0:.0f} MHz  power {r['power_w'] or 0:.0f} W",
              flush=True)
    for m in args.rows:
        best = {op: min(r["ms"] for r in rows if r["M"] == m and r["op"] == op)
                for op in ("cublas_linear", "gemm_q_dense")}
        print(f"M={m}: gemm_q dense x cuBLAS (sustained, best of 2) "
              f"{best['cublas_linear'] / best['gemm_q_dense']:.3f}")
    commit = os.environ.get("FLASHOMNI_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = dict(device=torch.cuda.get_device_name(), commit=commit,
                date=datetime.datetime.now().isoformat(timespec="seconds"),
                torch=torch.__version__, seconds_per_phase=args.seconds)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"gemm_sustained_{args.tag}.json"
    path.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
