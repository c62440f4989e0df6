"""FlashOmni benchmark: sparse GEMM-Q and GEMM-O (update / dispatch) against cuBLAS (torch matmul)
measured in the same run, on the projection shapes of a 24-head, d = 128 DiT (K = N = 3072, and
K = 3072 + 12288 = 15360 for FLUX's fused [attention | MLP] proj_out).

Each row: median time of >= 10 CUDA-graph replays (each replay runs the op `--calls` times, after
warm-up), TFLOP/s of the work actually required (active tiles only), x cuBLAS (cuBLAS dense time
/ ours) and fraction of ideal, where ideal = cuBLAS dense time x active work fraction (GEMM-Q:
active tiles; dispatch: active K columns; update: 1, it does the dense work). Writes JSON and a
PNG plot into --out (bench/results by default). --planned adds gemm_q and gemm_o_dispatch on a
plan made once (gemm_q_plan, gemm_o_dispatch_plan), as an engine's dispatch steps run them.

The replays are short bursts, whose SM clock depends on what ran just before (cuBLAS's own time
moved 17 % between two samples of one run); under sustained load both cuBLAS and our kernels sit
at the 700 W cap. bench/gemm_clock_probe.py measures the dense ratio that way (gemm_notes.md).

    FLASHOMNI_LIBRARY=build/libflashomni.so python3 bench/gemm_bench.py
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
import flashomni as fo  # noqa: E402
from gemm_cases import (HEAD_DIM, HEADS, active_draw, block_rows, case_seed,  # noqa: E402
                        dispatch_work)


def symbols(rows, density, seed):
    """Random Sq with the given density (exactly dense at 1), on the GPU."""
    active = active_draw(rows, density, seed)
    q_blocks = active.shape[1]
    q_words = (q_blocks + 31) // 32
    words = np.zeros((1, HEADS, q_words), dtype=np.uint32)
    for i in range(q_blocks):
        words[0, :, i // 32] |= active[:, i].astype(np.uint32) << np.uint32(i % 32)
    kv = torch.zeros(HEADS * q_blocks * q_words, dtype=torch.int32, device="cuda")
    s = fo.Symbols(torch.from_numpy(words.view(np.int32)).cuda(), kv, heads=HEADS,
                   q_blocks=q_blocks, kv_blocks=q_blocks)
    # Row-weighted active fraction (the last block may be partial).
    frac = float((active * block_rows(rows)[None, :]).sum() / (HEADS * rows))
    return s, frac


def q_operands(m):
    """GEMM-Q's input X [m, 3072], weight [H d, 3072], bias and output (bf16)."""
    dt = torch.bfloat16
    x = torch.randn(m, 3072, device="cuda", dtype=dt)
    wq = torch.randn(HEADS * HEAD_DIM, 3072, device="cuda", dtype=dt) / 55
    bq = torch.randn(HEADS * HEAD_DIM, device="cuda", dtype=dt)
    return x, wq, bq, torch.empty(m, HEADS * HEAD_DIM, device="cuda", dtype=dt)


def case_symbols(op, m, density, seed):
    """The Sq draw of one case (op "q" or "o"), so every tool times the same draws."""
    return symbols(m, density, seed=case_seed(op, m, density, seed))


def o_operands(m, extra, cache_dt):
    """GEMM-O's K, input A [m, K], weight [3072, K], bias, output Y and cache C (bf16 but C)."""
    dt, k = torch.bfloat16, HEADS * HEAD_DIM + extra
    a = torch.randn(m, k, device="cuda", dtype=dt)
    wo = torch.randn(3072, k, device="cuda", dtype=dt) / np.sqrt(k)
    bo = torch.randn(3072, device="cuda", dtype=dt)
    y = torch.empty(m, 3072, device="cuda", dtype=dt)
    return k, a, wo, bo, y, torch.empty(m, 3072, device="cuda", dtype=cache_dt)


def time_op(fn, calls, reps):
    """Median milliseconds per call: fn captured `calls` times in a CUDA graph, replayed."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    for _ in range(3):
        g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        g.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / calls)
    del g
    return float(np.median(times)), float(np.min(times)), float(np.max(times))


def copy_bandwidth():
    """Device-to-device copy GB/s (bytes read + written), for the memory floor."""
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    ms, _, _ = time_op(lambda: b.copy_(a), 2, 10)
    return 2 * a.numel() / ms / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[4608, 16896, 33792])
    ap.add_argument("--densities", type=float, nargs="*", default=[1.0, 0.5, 0.25, 0.1])
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--tag", default="")
    ap.add_argument("--cache-dtype", choices=["float32", "bfloat16"], default="float32",
                    help="dtype of GEMM-O's cache C (bfloat16: TMA-staged in the kernel)")
    ap.add_argument("--ops", nargs="*", choices=["q", "o"], default=["q", "o"])
    ap.add_argument("--seed", type=int, default=0,
                    help="added to each case's symbol seed: other random Sq draws of one density")
    ap.add_argument("--extras", type=int, nargs="*", default=[0, 12288],
                    help="GEMM-O always-active input columns after the heads (K = 3072 + extra)")
    ap.add_argument("--planned", action="store_true",
                    help="also gemm_q / gemm_o_dispatch on a plan made once (gemm_*_plan): the "
                         "dispatch steps' calls between two full steps, without the planner")
    args = ap.parse_args()
    cache_dt = torch.float32 if args.cache_dtype == "float32" else torch.bfloat16
    torch.manual_seed(0)
    dev = torch.cuda.get_device_name()
    bw = copy_bandwidth()
    print(f"device: {dev}; copy bandwidth {bw:.0f} GB/s", flush=True)
    rows_out = []

    def record(op, m, k, n, density, frac, ms, spread, base_ms, work):
        flops = 2.0 * m * n * k * work
        ideal = base_ms * work
        row = dict(op=op, M=m, K=k, N=n, density=density, active_fraction=frac, ms=ms,
                   ms_min=spread[0], ms_max=spread[1], tflops=flops / ms / 1e9,
                   x_cublas=base_ms / ms, cublas_ms=base_ms, ideal_ms=ideal,
                   frac_of_ideal=ideal / ms)
        rows_out.append(row)
        print(f"{op:16s} M={m:6d} K={k:6d} d={density:4.2f} act={frac:5.3f} {ms:8.3f} ms "
              f"{row['tflops']:6.0f} TF/s  x cuBLAS {row['x_cublas']:5.2f}  "
              f"ideal {row['frac_of_ideal']:5.2f}", flush=True)

    for m in args.rows:
        if "q" in args.ops:
            x, wq, bq, out = q_operands(m)
            # cuBLAS baseline: the same projection through torch (F.linear with bias).
            base_q, lo, hi = time_op(lambda: torch.nn.functional.linear(x, wq, bq), args.calls,
                                     args.reps)
            record("cublas_linear", m, 3072, 3072, 1.0, 1.0, base_q, (lo, hi), base_q, 1.0)
            ms, lo, hi = time_op(lambda: fo.gemm_q(x, wq, bq, heads=HEADS, out=out), args.calls,
                                 args.reps)
            record("gemm_q_dense", m, 3072, 3072, 1.0, 1.0, ms, (lo, hi), base_q, 1.0)
            for d in args.densities:
                s, frac = case_symbols("q", m, d, args.seed)
                ms, lo, hi = time_op(lambda: fo.gemm_q(x, wq, bq, heads=HEADS, symbols=s, out=out),
                                     args.calls, args.reps)
                record("gemm_q", m, 3072, 3072, d, frac, ms, (lo, hi), base_q, frac)
                if args.planned:
                    plan = fo.gemm_q_plan(x, wq, bq, heads=HEADS, symbols=s, out=out)
                    ms, lo, hi = time_op(lambda: fo.gemm_q(x, wq, bq, heads=HEADS, symbols=s,
                                                           out=out, plan=plan),
                                         args.calls, args.reps)
                    record("gemm_q_planned", m, 3072, 3072, d, frac, ms, (lo, hi), base_q, frac)
            del x, out
        for extra in (args.extras if "o" in args.ops else []):
            k, a, wo, bo, y, cache = o_operands(m, extra, cache_dt)
            base, lo, hi = time_op(lambda: torch.nn.functional.linear(a, wo, bo), args.calls,
                                   args.reps)
            record("cublas_linear", m, k, 3072, 1.0, 1.0, base, (lo, hi), base, 1.0)
            for d in args.densities:
                s, frac = case_symbols("o", m, d, args.seed)
                ms, lo, hi = time_op(
                    lambda: fo.gemm_o_update(a, wo, bo, heads=HEADS, head_dim=HEAD_DIM,
                                             symbols=s, out=y, cache=cache), args.calls,
                    args.reps)
                record("gemm_o_update", m, k, 3072, d, frac, ms, (lo, hi), base, 1.0)
                kfrac = dispatch_work(frac, extra)
                ms, lo, hi = time_op(
                    lambda: fo.gemm_o_dispatch(a, wo, cache, heads=HEADS, head_dim=HEAD_DIM,
                                               symbols=s, out=y), args.calls, args.reps)
                record("gemm_o_dispatch", m, k, 3072, d, frac, ms, (lo, hi), base, kfrac)
                # Memory floor of dispatch: cache read + Y write + active A columns.
                floor = (m * 3072 * (cache_dt.itemsize + 2) + m * k * kfrac * 2) / bw / 1e6
                rows_out[-1]["memory_floor_ms"] = floor
                if args.planned:
                    kw = dict(heads=HEADS, head_dim=HEAD_DIM, symbols=s, out=y)
                    plan = fo.gemm_o_dispatch_plan(a, wo, cache, **kw)
                    ms, lo, hi = time_op(lambda: fo.gemm_o_dispatch(a, wo, cache, plan=plan, **kw),
                                         args.calls, args.reps)
                    record("gemm_o_dispatch_planned", m, k, 3072, d, frac, ms, (lo, hi), base,
                           kfrac)
                    rows_out[-1]["memory_floor_ms"] = floor
            del a, wo, y, cache
        torch.cuda.empty_cache()

    commit = os.environ.get("FLASHOMNI_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
        cwd=REPO).stdout.strip()
    meta = dict(device=dev, commit=commit, date=datetime.datetime.now().isoformat(timespec="seconds"),
                torch=torch.__version__, copy_gbps=bw, heads=HEADS, head_dim=HEAD_DIM,
                calls_per_replay=args.calls, reps=args.reps, dtype="bfloat16",
                cache_dtype=args.cache_dtype)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "gemm_" + (args.tag or dev.replace(" ", "_").replace("/", "_"))
    (out_dir / f"{stem}.json").write_text(json.dumps(dict(meta=meta, rows=rows_out), indent=1))
    try:
        plot(rows_out, meta, out_dir / f"{stem}.png")
    except Exception as e:  # plotting is optional (matplotlib may be missing)
        print("plot skipped:", e)
    print(f"wrote {out_dir / stem}.json")


def plot(rows, meta, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = sorted({r["M"] for r in rows})
    fig, axes = plt.subplots(1, len(ms), figsize=(5 * len(ms), 4), squeeze=False)
    for ax, m in zip(axes[0], ms):
        for op, k, style in (("gemm_q", 3072, "o-"), ("gemm_q_planned", 3072, "o:"),
                             ("gemm_o_dispatch", 3072, "s-"), ("gemm_o_dispatch_planned", 3072, "s:"),
                             ("gemm_o_dispatch", 15360, "s--"), ("gemm_o_update", 3072, "^-"),
                             ("gemm_o_update", 15360, "^--")):
            sel = [r for r in rows if r["op"] == op and r["M"] == m and r["K"] == k]
            if sel:
                ax.plot([r["density"] for r in sel], [r["x_cublas"] for r in sel], style,
                        label=f"{op} K={k}")
        ax.plot([0.1, 1], [10, 1], ":", color="gray", label="ideal 1/density")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel("query density")
        ax.set_ylabel("speed-up vs cuBLAS dense")
        ax.set_title(f"M = {m}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"FlashOmni sparse GEMMs, {meta['device']}, {meta['commit']}, {meta['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
