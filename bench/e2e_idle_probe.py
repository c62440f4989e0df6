"""Where a generation's GPU waits: a profiled window of steps of the end-to-end benchmark's model
(bench/e2e_bench.py builders, same engine settings), dense and FlashOmni, and an account of the
GPU's idle time inside it.

The FLUX-shaped FlashOmni steps of session 4 took ~201 ms of wall time for ~189 ms of kernels
(dense: 184 / 181 ms). This script answers which of these it is:
- host-bound: the kernel after a gap starts within a few microseconds of its launch call
  returning (the queue was empty), and the host was busy in Python / the ops in between;
- a host synchronisation: a long cudaStreamSynchronize / cudaEventSynchronize / pageable copy /
  allocation call overlaps the gap;
- both arms alike (then it is the harness, not FlashOmni).

Per arm it reports: window wall time (first kernel start to last kernel end), GPU busy time
(union of kernels, copies and memsets), idle time, gaps >= --gap-us with launch lag (kernel start
minus the end of its launch call) and the longest runtime call and CPU-side region overlapping
each, runtime API time by name, and per step the host's enqueue time (perf_counter around the
forward, no synchronisation) beside the GPU time (CUDA events). The LayerEngine stages are
marked with record_function so a gap names the engine stage the host was in.

    PYTHONPATH=python:bench FLASHOMNI_LIBRARY=... python3 bench/e2e_idle_probe.py --out dir
"""

import argparse
import bisect
import collections
import contextlib
import datetime
import functools
import gzip
import json
import os
import time

import torch

from flashomni import engine as fe
from flashomni import pending_density

import e2e_bench as eb
from e2e_models import build_flux, build_hunyuan

GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
SYNC_LIKE = ("Synchronize", "Memcpy", "Malloc", "Free", "HostAlloc", "HostRegister")


def mark_engine_stages():
    """Wraps the LayerEngine stages and the pending density read in record_function ranges
    (this process only). Returns the undo callable."""
    targets = [(fe.LayerEngine, n) for n in ("begin", "project_q", "attention", "project_o",
                                             "_choose_symbols", "_forecast", "resolve_density")]
    targets.append((pending_density.PendingDensity, "__init__"))
    saved = []
    for cls, name in targets:
        fn = getattr(cls, name)
        label = f"fo::{cls.__name__}.{name}"

        def wrapped(*a, _fn=fn, _label=label, **kw):
            with torch.profiler.record_function(_label):
                return _fn(*a, **kw)

        setattr(cls, name, functools.wraps(fn)(wrapped))
        saved.append((cls, name, fn))

    def undo():
        for cls, name, fn in saved:
            setattr(cls, name, fn)

    return undo


def run_steps(forward, latents, sigmas, engine, last, window, trace_path):
    """Steps 0..last (inclusive); steps in `window` (range) profiled. Returns per-step rows."""
    x = latents.clone()
    rows = []
    prof = None
    for s in range(last + 1):
        if window and s == window.start:
            torch.cuda.synchronize()
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                      torch.profiler.ProfilerActivity.CUDA])
            prof.start()
        if engine is not None:
            engine.set_step(s)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ctx = torch.profiler.record_function(f"step {s}") if prof else contextlib.nullcontext()
        with ctx:
            t0 = time.perf_counter()
            start.record()
            v = forward(x, sigmas[s])
            x = x + (sigmas[s + 1] - sigmas[s]) * v
            end.record()
            host_ms = (time.perf_counter() - t0) * 1e3
        kind = fe.step_kind_name(engine.schedule.step_kind(s)) if engine else "dense"
        rows.append(dict(step=s, kind=kind, host_enqueue_ms=host_ms, events=(start, end)))
        if prof is not None and s == window.stop - 1:
            torch.cuda.synchronize()
            prof.stop()
            prof.export_chrome_trace(trace_path)
            prof = None
    torch.cuda.synchronize()
    for r in rows:
        a, b = r.pop("events")
        r["gpu_ms"] = a.elapsed_time(b)
    return rows


class Spans:
    """Host-side events sorted by start, for "which overlap [lo, hi)" queries in O(log n + k)
    (a 5-step FLUX window holds ~10^4 runtime calls and ~10^3 gaps)."""

    def __init__(self, events):
        self.events = sorted(events, key=lambda e: e["ts"])
        self.starts = [e["ts"] for e in self.events]
        self.longest = max((e.get("dur", 0) for e in self.events), default=0)

    def overlapping(self, lo, hi):
        i = bisect.bisect_left(self.starts, hi)
        j = bisect.bisect_left(self.starts, lo - self.longest)
        return [e for e in self.events[j:i] if e["ts"] + e.get("dur", 0) > lo]


def analyse(trace_path, gap_us, top):
    with open(trace_path) as f:
        trace = json.load(f)
    ev = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]
    gpu = sorted((e for e in ev if e.get("cat") in GPU_CATS), key=lambda e: e["ts"])
    runtime = Spans(e for e in ev if e.get("cat") in ("cuda_runtime", "cuda_driver"))
    cpu = [e for e in ev if e.get("cat") in ("cpu_op", "user_annotation")]
    marks = Spans(e for e in cpu if e["name"].startswith("fo::"))
    launch_of = {e["args"].get("correlation"): e for e in runtime.events if "args" in e}
    if not gpu:
        return dict(error="no GPU events in the trace")
    busy, gaps = 0.0, []
    cur_lo, cur_hi = gpu[0]["ts"], gpu[0]["ts"] + gpu[0]["dur"]
    prev_name = gpu[0]["name"]
    for e in gpu[1:]:
        lo, hi = e["ts"], e["ts"] + e["dur"]
        if lo > cur_hi:
            busy += cur_hi - cur_lo
            if lo - cur_hi >= gap_us:
                gaps.append((cur_hi, lo, prev_name, e))
            cur_lo, cur_hi = lo, hi
        else:
            cur_hi = max(cur_hi, hi)
        if hi >= cur_hi:
            prev_name = e["name"]
    busy += cur_hi - cur_lo
    wall = cur_hi - gpu[0]["ts"]
    gap_rows = []
    by_region = collections.Counter()
    by_runtime = collections.Counter()
    for lo, hi, before, nxt in gaps:
        launch = launch_of.get(nxt.get("args", {}).get("correlation"))
        lag = nxt["ts"] - (launch["ts"] + launch["dur"]) if launch else None
        rt = max(runtime.overlapping(lo, hi), key=lambda e: e["dur"], default=None)
        # The innermost marked region (fo:: stage or step) and the longest CPU op in the gap.
        regions = marks.overlapping(lo, hi)
        region = min(regions, key=lambda e: e["dur"])["name"] if regions else "(no fo:: stage)"
        by_region[region] += hi - lo
        if rt is not None and any(k in rt["name"] for k in SYNC_LIKE):
            by_runtime[rt["name"]] += hi - lo
        gap_rows.append(dict(gap_us=round(hi - lo, 1), after=before[:90], before=nxt["name"][:90],
                             launch_lag_us=None if lag is None else round(lag, 1),
                             longest_runtime_call=None if rt is None else
                             f"{rt['name']} {rt['dur']:.0f} us",
                             engine_stage=region, span=(lo, hi)))
    api = collections.Counter()
    api_n = collections.Counter()
    for e in runtime.events:
        api[e["name"]] += e["dur"]
        api_n[e["name"]] += 1
    longest = sorted(gap_rows, key=lambda g: -g["gap_us"])[:top]
    ops = Spans(e for e in cpu if not e["name"].startswith(("fo::", "step ")))
    for g in gap_rows:
        lo, hi = g.pop("span")
        if g in longest:  # the aten ops overlapping: for the listed gaps only (cost)
            hits = ops.overlapping(lo, hi)
            g["longest_cpu_op"] = max(hits, key=lambda e: e["dur"])["name"] if hits else None
    # Host time: each fo:: stage's exclusive time (its range minus the fo:: ranges nested in
    # it), the steps' ranges, and launch calls long enough to have blocked on a full queue.
    host = collections.Counter()
    calls = collections.Counter()
    stack = []
    for e in marks.events:
        end = e["ts"] + e["dur"]
        while stack and stack[-1][1] <= e["ts"]:
            stack.pop()
        if stack:
            host[stack[-1][0]["name"]] -= e["dur"]
        host[e["name"]] += e["dur"]
        calls[e["name"]] += 1
        stack.append((e, end))
    steps = [e for e in cpu if e["name"].startswith("step ")]
    step_host = sum(e["dur"] for e in steps)
    long_launch = [e for e in runtime.events if "Launch" in e["name"] and e["dur"] > 50]
    starved = [g for g in gap_rows if g["launch_lag_us"] is not None and g["launch_lag_us"] < 20]
    return dict(
        window_wall_ms=wall / 1e3, gpu_busy_ms=busy / 1e3, gpu_idle_ms=(wall - busy) / 1e3,
        gaps=len(gap_rows), gaps_total_ms=sum(g["gap_us"] for g in gap_rows) / 1e3,
        gaps_starved=len(starved), gaps_starved_ms=sum(g["gap_us"] for g in starved) / 1e3,
        gap_ms_by_engine_stage={k: round(v / 1e3, 3) for k, v in by_region.most_common(top)},
        gap_ms_by_sync_like_call={k: round(v / 1e3, 3) for k, v in by_runtime.most_common(top)},
        runtime_api_ms={k: dict(ms=round(v / 1e3, 3), calls=api_n[k])
                        for k, v in api.most_common(top)},
        host_ms_steps=step_host / 1e3,
        host_ms_by_engine_stage={k: dict(ms=round(v / 1e3, 3), calls=calls[k])
                                 for k, v in host.most_common()},
        host_ms_outside_engine_stages=(step_host - sum(
            e["dur"] for e in marks.events if not any(
                o is not e and o["ts"] <= e["ts"] and o["ts"] + o["dur"] >= e["ts"] + e["dur"]
                for o in marks.overlapping(e["ts"], e["ts"] + 1e-3)))) / 1e3,
        launch_calls_over_50us=dict(count=len(long_launch),
                                    ms=sum(e["dur"] for e in long_launch) / 1e3),
        longest_gaps=longest)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("flux", "hunyuan"), default="flux")
    ap.add_argument("--steps", type=int, default=50, help="the schedule's step count")
    ap.add_argument("--window", default="9,14", help="profiled steps [a, b)")
    ap.add_argument("--gap-us", type=float, default=10.0)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--tag", default="h100")
    ap.add_argument("--keep-trace", action="store_true",
                    help="also write the Chrome traces, gzip'd, to --out")
    eb.add_engine_args(ap)  # e2e_bench's engine settings and model shapes, its defaults
    eb.add_model_args(ap, hy_double=2, hy_single=4)
    ap.set_defaults(smoke_cpu=False)  # the builders' switch (e2e_bench --smoke-cpu)
    args = ap.parse_args(argv)
    a, b = (int(v) for v in args.window.split(","))
    window = range(a, b)
    eb.require_gpu_kernels()
    device, dtype = "cuda", torch.bfloat16
    builder = build_flux if args.model == "flux" else build_hunyuan
    model, latents, forward, apply, meta, dense_setup = builder(args, device, dtype)
    sigmas = torch.linspace(1.0, 0.0, args.steps + 1, device=device)
    cfg = eb.engine_config(args, dtype, args.tau_q, args.tau_kv, meta.get("query_score"))
    os.makedirs(args.out, exist_ok=True)
    out = dict(date=datetime.datetime.now().isoformat(timespec="seconds"),
               commit=eb.git_commit(), device=torch.cuda.get_device_name(), torch=torch.__version__,
               model=meta, args=vars(args), arms={})
    undo_marks = mark_engine_stages()
    try:
        with torch.no_grad(), eb.sdpa_context(device):
            if dense_setup:
                dense_setup()
            eb.generate(forward, latents, sigmas[:3], timed=False)
            arms = [("dense", None)]
            engine = fe.FlashOmniEngine(cfg)
            arms.append(("flashomni", engine))
            for name, eng in arms:
                undo = apply(eng) if eng is not None else (lambda: None)
                try:
                    # Unprofiled first (also the warm-up), then the same steps profiled.
                    plain = run_steps(forward, latents, sigmas, eng, window.stop, None, "")
                    if eng is not None:
                        eng.reset()
                    trace = os.path.join("/tmp", f"idle_trace_{args.tag}_{name}.json")
                    rows = run_steps(forward, latents, sigmas, eng, window.stop, window, trace)
                    res = analyse(trace, args.gap_us, args.top)
                    if args.keep_trace:
                        with open(trace, "rb") as f, gzip.open(
                                os.path.join(args.out, os.path.basename(trace) + ".gz"), "wb") as g:
                            g.write(f.read())
                    res["steps_unprofiled"] = plain
                    res["steps_profiled"] = rows
                    out["arms"][name] = res
                    eb.log(f"{name}: window {res['window_wall_ms']:.1f} ms, busy "
                           f"{res['gpu_busy_ms']:.1f}, idle {res['gpu_idle_ms']:.1f} ms in "
                           f"{res['gaps']} gaps >= {args.gap_us} us ({res['gaps_starved']} "
                           f"starved, {res['gaps_starved_ms']:.1f} ms)")
                finally:
                    undo()
    finally:
        undo_marks()
    path = os.path.join(args.out, f"e2e_idle_{args.tag}_{args.model}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    for name, res in out["arms"].items():
        print(f"\n== {name}")
        for k in ("gap_ms_by_engine_stage", "gap_ms_by_sync_like_call", "runtime_api_ms",
                  "host_ms_steps", "host_ms_by_engine_stage", "host_ms_outside_engine_stages",
                  "launch_calls_over_50us"):
            print(f"  {k}: {json.dumps(res[k])}")
        for r, q in zip(res["steps_unprofiled"], res["steps_profiled"]):
            if r["step"] in window:
                print(f"  step {r['step']} {r['kind']}: host enqueue {r['host_enqueue_ms']:.1f} "
                      f"ms, GPU {r['gpu_ms']:.1f} ms (profiled: {q['host_enqueue_ms']:.1f} / "
                      f"{q['gpu_ms']:.1f})")
        for g in res["longest_gaps"][:8]:
            print(f"  gap {json.dumps(g)}")
    eb.log(f"wrote {path}")


if __name__ == "__main__":
    main()
