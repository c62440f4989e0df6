"""FlashOmni: our GEMMs against cuBLAS (torch linear) under sustained load, with the SM clock and
power nvidia-smi reports meanwhile. The graph-replay benchmark (gemm_bench.py) times short
bursts, whose clock depends on what ran just before (cuBLAS is timed first, after a pause; its own
time moved 12-17 % between two samples of one run); a diffusion model keeps the GPU busy for
seconds, at its power cap.

Cases are grouped by shape (M, K): in a group cuBLAS runs first, then each case, cuBLAS again,
the cases in reverse order, cuBLAS a third time, with no pause in between, so every case has a
cuBLAS phase at most a few seconds away under the same load. Each phase replays a CUDA graph of
--calls calls back to back for --seconds (graphs keep the host out of the small cases: a 40 us
call is shorter than a launch from Python); a phase's time is its total GPU time over its calls.
Per case: best of its two phases, x cuBLAS = mean of the group's cuBLAS phases / ours, and
fraction of ideal with ideal = that cuBLAS time x the work fraction (gemm_bench.py's rule: active
tiles for GEMM-Q, 1 for update, active K columns for dispatch). JSON and a line per phase and per
case go to --out.

    PYTHONPATH=python:bench FLASHOMNI_LIBRARY=build/libflashomni.so \
        python3 bench/gemm_clock_probe.py                      # dense gemm_q (with bias) only
    ... python3 bench/gemm_clock_probe.py --ops q o --densities 1 0.5 0.25 0.1 [--planned]
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

import numpy as np
import torch

import flashomni as fo
from gemm_bench import HEAD_DIM, HEADS, case_symbols, dispatch_work, o_operands, q_operands


def graph_of(fn, calls):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    return g


def phase(g, calls, seconds):
    """(t0, t1 unix seconds, ms per call, calls) of replaying g back to back for `seconds`."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    g.replay()
    end.record()
    end.synchronize()
    # Batches of >= ~50 ms between host syncs, so the sync's gap (~10-50 us) stays < 0.1 %.
    batch = max(4, int(50.0 / max(start.elapsed_time(end), 1e-3)))
    t0, replays = time.time(), 0
    start.record()
    while time.time() - t0 < seconds:
        for _ in range(batch):
            g.replay()
        replays += batch
        torch.cuda.synchronize()
    end.record()
    end.synchronize()
    return t0, time.time(), start.elapsed_time(end) / (replays * calls), replays * calls


def smi_samples(path, t0, t1):
    """(clock MHz, power W) samples of the nvidia-smi CSV inside [t0, t1] (unix seconds)."""
    out = []
    with open(path) as f:
        for row in csv.reader(f):
            try:
                # nvidia-smi writes local time; a naive datetime's timestamp() reads it as local.
                t = datetime.datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
                if t0 <= t <= t1:
                    out.append((float(row[1].split()[0]), float(row[2].split()[0])))
            except (ValueError, IndexError):
                continue
    return out


def groups(args, cache_dt):
    """Yields (m, k, cuBLAS fn, [(op, density, work, fn)]); the fns keep the tensors alive."""
    for m in args.rows:
        if "q" in args.ops:
            x, wq, bq, out = q_operands(m)
            # Without a bias too: what the bias costs us (cuBLAS is timed with it).
            cases = [("gemm_q_dense", 1.0, 1.0,
                      lambda: fo.gemm_q(x, wq, bq, heads=HEADS, out=out)),
                     ("gemm_q_dense_nobias", 1.0, 1.0,
                      lambda: fo.gemm_q(x, wq, None, heads=HEADS, out=out))]
            for d in args.densities:
                s, frac = case_symbols("q", m, d, args.seed)
                cases.append(("gemm_q", d, frac, lambda s=s: fo.gemm_q(
                    x, wq, bq, heads=HEADS, symbols=s, out=out)))
                if args.planned:
                    plan = fo.gemm_q_plan(x, wq, bq, heads=HEADS, symbols=s, out=out)
                    cases.append(("gemm_q_planned", d, frac, lambda s=s, plan=plan: fo.gemm_q(
                        x, wq, bq, heads=HEADS, symbols=s, out=out, plan=plan)))
            yield m, 3072, lambda: torch.nn.functional.linear(x, wq, bq), cases
            del x, wq, bq, out, cases
        for extra in (args.extras if "o" in args.ops else []):
            k, a, wo, bo, y, cache = o_operands(m, extra, cache_dt)
            cases = []
            for d in args.densities:
                s, frac = case_symbols("o", m, d, args.seed)
                cases.append(("gemm_o_update", d, 1.0, lambda s=s: fo.gemm_o_update(
                    a, wo, bo, heads=HEADS, head_dim=HEAD_DIM, symbols=s, out=y, cache=cache)))
                cases.append(("gemm_o_dispatch", d, dispatch_work(frac, extra),
                              lambda s=s: fo.gemm_o_dispatch(a, wo, cache, heads=HEADS,
                                                             head_dim=HEAD_DIM, symbols=s, out=y)))
                if args.planned:
                    kw = dict(heads=HEADS, head_dim=HEAD_DIM, symbols=s, out=y)
                    up = fo.gemm_o_update_plan(a, wo, bo, cache=cache, **kw)
                    dp = fo.gemm_o_dispatch_plan(a, wo, cache, **kw)
                    cases.append(("gemm_o_update_planned", d, 1.0,
                                  lambda kw=kw, up=up: fo.gemm_o_update(
                                      a, wo, bo, cache=cache, plan=up, **kw)))
                    cases.append(("gemm_o_dispatch_planned", d, dispatch_work(frac, extra),
                                  lambda kw=kw, dp=dp: fo.gemm_o_dispatch(
                                      a, wo, cache, plan=dp, **kw)))
            yield m, k, lambda: torch.nn.functional.linear(a, wo, bo), cases
            del a, wo, bo, y, cache, cases
        torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[4608, 16896, 33792])
    ap.add_argument("--ops", nargs="*", choices=["q", "o"], default=["q"])
    ap.add_argument("--densities", type=float, nargs="*", default=[],
                    help="Sq densities of the sparse cases (none: dense gemm_q only)")
    ap.add_argument("--extras", type=int, nargs="*", default=[0, 12288],
                    help="GEMM-O always-active input columns after the heads (K = 3072 + extra)")
    ap.add_argument("--cache-dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--planned", action="store_true",
                    help="also each sparse case run on a plan made once (gemm_*_plan): no planner")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--calls", type=int, default=8, help="calls per graph replay")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--tag", default="h100")
    args = ap.parse_args()
    cache_dt = torch.float32 if args.cache_dtype == "float32" else torch.bfloat16
    torch.manual_seed(0)
    smi_path = os.path.join(tempfile.mkdtemp(), "smi.csv")
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=timestamp,clocks.sm,power.draw",
                            "--format=csv,noheader", "-lms", "100"],
                           stdout=open(smi_path, "w"), stderr=subprocess.DEVNULL)
    rows = []
    try:
        for group, (m, k, base_fn, cases) in enumerate(groups(args, cache_dt)):
            base_g = graph_of(base_fn, args.calls)
            graphs = [graph_of(c[3], args.calls) for c in cases]
            order = ([None] + list(range(len(cases))) + [None] +
                     list(reversed(range(len(cases)))) + [None])
            for idx in order:
                g = base_g if idx is None else graphs[idx]
                op, d, work = ("cublas_linear", 1.0, 1.0) if idx is None else cases[idx][:3]
                t0, t1, ms, calls = phase(g, args.calls, args.seconds)
                rows.append(dict(group=group, op=op, M=m, K=k, density=d, work=work, ms=ms,
                                 calls=calls, tflops=2.0 * m * k * 3072 * work / ms / 1e9,
                                 t0=t0, t1=t1))
            del base_g, graphs
    finally:
        time.sleep(0.3)
        smi.terminate()
        smi.wait()
    for r in rows:
        s = smi_samples(smi_path, r["t0"] + 0.3, r["t1"])  # past the phase's first 0.3 s
        r["smi_samples"] = len(s)
        r["sm_clock_mhz"] = sum(c for c, _ in s) / len(s) if s else None
        r["power_w"] = sum(p for _, p in s) / len(s) if s else None
        print(f"{r['op']:16s} M={r['M']:6d} K={r['K']:6d} d={r['density']:4.2f}: {r['ms']:.4f} ms "
              f"{r['tflops']:5.0f} TF/s  clock {r['sm_clock_mhz'] or 0:.0f} MHz  "
              f"power {r['power_w'] or 0:.0f} W", flush=True)
    summary = []
    for group in dict.fromkeys(r["group"] for r in rows):  # GEMM-Q and GEMM-O's K = 3072 apart
        grp = [r for r in rows if r["group"] == group]
        m, k = grp[0]["M"], grp[0]["K"]
        base = float(np.mean([r["ms"] for r in grp if r["op"] == "cublas_linear"]))
        for op, d in dict.fromkeys((r["op"], r["density"]) for r in grp):
            if op == "cublas_linear":
                continue
            mine = [r for r in grp if r["op"] == op and r["density"] == d]
            ms, work = min(r["ms"] for r in mine), mine[0]["work"]
            summary.append(dict(op=op, M=m, K=k, density=d, work=work, ms=ms, cublas_ms=base,
                                x_cublas=base / ms, frac_of_ideal=base * work / ms))
            print(f"{op:16s} M={m:6d} K={k:6d} d={d:4.2f}: {ms:.4f} ms, cuBLAS {base:.4f} ms: "
                  f"x cuBLAS {base / ms:.3f}, ideal {base * work / ms:.3f} (sustained)")
    commit = os.environ.get("FLASHOMNI_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = dict(device=torch.cuda.get_device_name(), commit=commit,
                date=datetime.datetime.now().isoformat(timespec="seconds"),
                torch=torch.__version__, seconds_per_phase=args.seconds,
                calls_per_replay=args.calls, cache_dtype=args.cache_dtype, seed=args.seed)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f"gemm_sustained_{args.tag}.json"
    path.write_text(json.dumps(dict(meta=meta, rows=rows, summary=summary), indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
