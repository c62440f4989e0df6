"""FlashOmni end-to-end benchmark: a diffusers FLUX.1-dev-shaped transformer (19 double + 38
single blocks, hidden 3072, 24 heads x 128, 4096 image + 512 text tokens), a HunyuanVideo-shaped
one (~33K tokens; fewer blocks than the real 20 + 40 by default, totals scaled and labelled) and
a Wan2.1-1.3B-shaped one (--models wan: 12 heads x 128, 32760 video tokens, 10 of its 30 blocks
by default, scaled and labelled; self-attention has no text, so its engine ranks query blocks by
the output-change score), random weights at real shapes (no downloads), a flow-matching Euler
sampler over S steps.

Two arms on the same model, inputs and sampler:
- dense: the stock diffusers processors, torch SDPA with cuDNN preferred, cuBLAS projections;
- flashomni: flashomni.diffusers processors + FlashOmniEngine (Update–Dispatch, the GPU policy,
  sparse GEMM-Q / attention / GEMM-O, Taylor forecast, whole-layer reuse).

Reported per arm: per-step and total time (CUDA events around each step of an unprofiled
generation; mean per update / dispatch step of the schedule), a time split (GPU kernel time by
category — attention / gemm / policy / rest — from a second, profiled generation, total and per
step; kernel names listed for audit) and, for FlashOmni, the number of update / dispatch / reuse
layer-steps and the densities. Deviation of the final latents from dense: relative L2 and PSNR.
JSON to --out.

Honesty rules: if a FlashOmni GPU kernel or the GPU policy is unavailable the benchmark says so
and exits 2; nothing falls back to another implementation. --smoke-cpu runs tiny shapes through
the CPU oracle to exercise this script only (its JSON says it is not a measurement).

    PYTHONPATH=python FLASHOMNI_LIBRARY=build/libflashomni.so python3 bench/e2e_bench.py --out dir

--policy-sweep ["tq,tkv;...;reuse_all"]: one model of --models, one dense generation then one
FlashOmni generation per setting (default 0.5,0.15;1.0,0.5;2.0,1.0), speedup and PSNR each
(bench/e2e_sweep.py); HunyuanVideo at reduced depth (2 double + 4 single blocks unless
--hy-double / --hy-single say otherwise); within --sweep-budget-s (200 s); JSON
e2e_sweep_<tag>.json. FLASHOMNI_COMMIT (env) names the commit
when the tree has no .git.
"""

import argparse
import contextlib
import datetime
import importlib
import json
import math
import os
import subprocess
import sys
import time
import warnings

import torch

import flashomni
from flashomni import engine as fe

from e2e_models import (  # noqa: E402
    FLUX_FULL,
    HUNYUAN_FULL,
    WAN_FULL,
    build_flux,
    build_hunyuan,
    build_wan,
)
from e2e_sweep import SWEEP_DEFAULT, parse_sweep, print_sweep, run_policy_sweep  # noqa: E402


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def git_commit():
    """FLASHOMNI_COMMIT when set (a copied tree on the GPU machine has no .git), else git."""
    if os.environ.get("FLASHOMNI_COMMIT"):
        return os.environ["FLASHOMNI_COMMIT"]
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except Exception:  # noqa: BLE001 - not a checkout (e.g. a copied tree)
        return "unknown"


# ---- preconditions --------------------------------------------------------------------------
def require_gpu_kernels():
    """Every FlashOmni entry point the FlashOmni arm uses, on CUDA, or exit 2 naming it."""
    problems = []
    if not torch.cuda.is_available():
        problems.append("torch sees no CUDA device")
    elif not flashomni.has_cuda():
        problems.append(f"libflashomni ({flashomni.library_path()}) has no CUDA kernels for this "
                        "device")
    if not problems:
        dev, dt = "cuda", torch.bfloat16
        g = torch.Generator(device=dev).manual_seed(0)
        q, k, v = (torch.randn(1, 256, 2, 128, device=dev, dtype=dt, generator=g)
                   for _ in range(3))
        x = torch.randn(1, 256, 256, device=dev, dtype=dt, generator=g)
        w = torch.randn(256, 256, device=dev, dtype=dt, generator=g)
        b = torch.randn(256, device=dev, dtype=dt, generator=g)
        checks = [
            ("flashomni.policy.run_policy", lambda: importlib.import_module(
                "flashomni.policy").run_policy(q, k, step=40, num_steps=50, text=(0, 128))),
            ("sparse_attention", lambda s: flashomni.sparse_attention(q, k, v, s)),
            ("gemm_q", lambda s: flashomni.gemm_q(x, w, b, heads=2, symbols=s)),
            ("gemm_o_update", lambda s: flashomni.gemm_o_update(x, w, b, heads=2, symbols=s)),
            # The engine recomputes older forecast points' caches with the cache-only form.
            ("gemm_o_update(cache_only=True)", lambda s: flashomni.gemm_o_update(
                x, w, b, heads=2, symbols=s, cache_only=True)),
            ("gemm_o_dispatch", lambda s: flashomni.gemm_o_dispatch(
                x, w, torch.zeros(1, 256, 256, device=dev), heads=2, symbols=s)),
        ]
        symbols = None
        for name, fn in checks:
            try:
                if name.endswith("run_policy"):
                    symbols = fn()
                else:
                    fn(symbols)
                torch.cuda.synchronize()
            except Exception as e:  # noqa: BLE001 - reported, then exit 2
                problems.append(f"{name}: {type(e).__name__}: {e}")
                if name.endswith("run_policy"):
                    break
    if problems:
        for p in problems:
            print(f"FlashOmni GPU path unavailable: {p}", file=sys.stderr, flush=True)
        raise SystemExit(2)


# ---- sampling, timing, profiling ------------------------------------------------------------
def generate(forward, latents, sigmas, engine=None, timed=True, sync_log=None):
    """Flow-matching Euler: x <- x + (sigma_{s+1} - sigma_s) v(x, sigma_s). Returns the final
    latents and per-step ms (CUDA events, one sync at the end). sync_log (a list): dispatch steps
    run under torch's sync debug mode "warn" and the warnings (host syncs torch sees) go there."""
    x = latents.clone()
    use_events = timed and x.is_cuda
    marks = []
    for s in range(len(sigmas) - 1):
        if engine is not None:
            engine.set_step(s)
        if use_events:
            start = torch.cuda.Event(enable_timing=True)
            start.record()
        else:
            t0 = time.perf_counter()
        check = (sync_log is not None and x.is_cuda and
                 engine.schedule.step_kind(s) == fe.StepKind.DISPATCH)
        if check:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    v = forward(x, sigmas[s])
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            sync_log.extend(f"step {s}: {w.message}"[:300] for w in caught
                            if "synchroniz" in str(w.message))
        else:
            v = forward(x, sigmas[s])
        x = x + (sigmas[s + 1] - sigmas[s]) * v
        if use_events:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            marks.append((start, end))
        else:
            marks.append((time.perf_counter() - t0) * 1e3)
    if use_events:
        torch.cuda.synchronize()
        marks = [a.elapsed_time(b) for a, b in marks]
    return x, marks


# "forecast" is the engine's fused Taylor forecast of the GEMM-O caches (the records of e9cfdc9
# and 59de298 count it under "policy").
CATEGORIES = ("attention", "gemm", "policy", "forecast", "rest")


def classify(name):
    n = name.lower()
    if "flashomni" in n:
        if "attention" in n:
            return "attention"
        if "gemm" in n:
            return "gemm"
        if "forecast" in n:
            return "forecast"
        return "policy"  # pool / logits / rows / queries kernels of the GPU policy
    if any(p in n for p in ("sdpa", "fmha", "flash", "cudnn", "attention")):
        return "attention"
    if any(p in n for p in ("gemm", "nvjet", "cutlass", "xmma", "gemv", "cublas")):
        return "gemm"
    return "rest"


def profiled_split(forward, latents, sigmas, engine=None):
    """GPU kernel time per category over a whole (second) generation, plus the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    if not latents.is_cuda:
        return None
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        generate(forward, latents, sigmas, engine, timed=False)
        torch.cuda.synchronize()
    split = {c: 0.0 for c in CATEGORIES}
    kernels = []
    for evt in prof.key_averages():
        us = getattr(evt, "device_time_total", None)
        if us is None:
            us = evt.cuda_time_total
        if us <= 0:
            continue
        cat = classify(evt.key)
        split[cat] += us / 1e3
        kernels.append((us / 1e3, cat, evt.count, evt.key[:160]))
    kernels.sort(reverse=True)
    steps = len(sigmas) - 1
    return dict(ms=split, total_kernel_ms=sum(split.values()),
                per_step_ms={c: split[c] / steps for c in CATEGORIES},
                top_kernels=[dict(ms=round(t, 3), category=c, count=n, name=k)
                             for t, c, n, k in kernels[:25]])


def summarize(times, schedule):
    """Totals, per-step times and their mean over the schedule's update / dispatch steps (the
    dense arm too: the same step indices, for comparison)."""
    by_kind = {}
    for kind in (fe.StepKind.UPDATE, fe.StepKind.DISPATCH):
        ts = [t for s, t in enumerate(times) if schedule.step_kind(s) == kind]
        by_kind[kind.name.lower()] = dict(steps=len(ts), total_ms=sum(ts),
                                          mean_ms=sum(ts) / len(ts) if ts else None)
    return dict(total_ms=sum(times), mean_step_ms=sum(times) / len(times),
                by_step_kind=by_kind, per_step_ms=[round(t, 3) for t in times])


def deviation(x, ref):
    x, ref = x.double(), ref.double()
    err = (x - ref).pow(2).mean().sqrt().item()
    rel = ((x - ref).norm() / ref.norm()).item()
    peak = (ref.max() - ref.min()).item()
    return dict(rel_l2=rel, psnr_db=(20 * math.log10(peak / err) if err > 0 else float("inf")),
                max_abs=(x - ref).abs().max().item(), psnr_peak="max - min of the dense latents")


def engine_stats(engine):
    kinds, per_step = {}, []
    for s in range(engine.config.schedule.num_steps):
        reports = engine.step_reports(s).values()
        # A dispatch the dense fallback ran densely counts as "dense".
        names = ["dense" if r.dense else r.kind.name.lower() for r in reports]
        for k in names:
            kinds[k] = kinds.get(k, 0) + 1
        n = max(len(names), 1)
        per_step.append(dict(
            step=s, update=names.count("update"), dispatch=names.count("dispatch"),
            reuse=names.count("reuse"), dense=names.count("dense"),
            query_density=round(sum(r.query_density for r in reports) / n, 4),
            pair_density=round(sum(r.pair_density for r in reports) / n, 4)))
    return dict(layer_steps_by_kind=kinds, per_step=per_step)


def engine_config(args, dtype, tau_q, tau_kv, model_query_score=None, cache_dtype=None):
    """--query-score when given, else the model's default (meta query_score), else text_image;
    cache_dtype ("float32" / "bfloat16") overrides --cache-dtype."""
    cache_dtype = cache_dtype or args.cache_dtype
    return fe.EngineConfig(
        schedule=fe.ScheduleConfig(num_steps=args.steps, warmup=args.warmup,
                                   interval=args.interval),
        policy=fe.PolicyConfig(tau_q=tau_q, tau_kv=tau_kv),
        taylor_order=args.order, reuse_below=args.reuse_below,
        dense_q_above=args.dense_q_above, dense_fallback=args.dense_fallback,
        query_score=args.query_score or model_query_score or "text_image",
        cache_dtype=torch.float32 if cache_dtype == "float32" else dtype,
        forecast_dtype=torch.float32 if args.forecast_dtype == "float32" else None,
        gemm_plans=not args.no_gemm_plans)


def sdpa_context(device):
    if device != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # cuDNN first (the fastest dense kernel here, baselines.md); the others only where it
    # cannot run (e.g. the HunyuanVideo text refiner's masked attention).
    return sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION,
                        SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH], set_priority=True)


def dense_arm(name, forward, latents, sigmas, args, dense_setup, schedule):
    """(final latents, result dict) of the stock processors. Call under no_grad + sdpa."""
    if dense_setup:
        dense_setup()
    log(f"{name}: dense warm-up")
    generate(forward, latents, sigmas[:3], timed=False)
    log(f"{name}: dense, {args.steps} steps")
    dense_x, dense_t = generate(forward, latents, sigmas)
    result = summarize(dense_t, schedule)
    log(f"{name}: dense {result['total_ms']:.0f} ms")
    if not args.no_split:
        result["split"] = profiled_split(forward, latents, sigmas)
    return dense_x, result


def flashomni_arm(name, forward, latents, sigmas, args, apply, engine, device, warm=True,
                  split=True):
    """(final latents, result dict) of one FlashOmni generation with `engine` installed (warm:
    first a short generation through the first dispatch step, with torch's sync check)."""
    undo = apply(engine)
    try:
        result = {}
        if warm:
            first_dispatch = next((s for s in range(args.steps)
                                   if engine.schedule.step_kind(s) == fe.StepKind.DISPATCH), 0)
            log(f"{name}: flashomni warm-up (steps 0..{first_dispatch})")
            syncs = []
            generate(forward, latents, sigmas[:first_dispatch + 2], engine, timed=False,
                     sync_log=syncs)
            engine.reset()
            result["dispatch_step_syncs_seen_by_torch"] = (
                syncs[:20] if device == "cuda" else "not checked (CPU)")
        log(f"{name}: flashomni, {args.steps} steps")
        fo_x, fo_t = generate(forward, latents, sigmas, engine)
        result.update(summarize(fo_t, engine.schedule))
        result.update(engine_stats(engine))
        log(f"{name}: flashomni {result['total_ms']:.0f} ms")
        if split and not args.no_split:
            engine.reset()
            result["split"] = profiled_split(forward, latents, sigmas, engine)
    finally:
        undo()
    return fo_x, result


def run_model(name, builder, args, device, dtype):
    log(f"{name}: building the model (random weights)")
    model, latents, forward, apply, meta, dense_setup = builder(args, device, dtype)
    # On the device: indexing and the Euler update then need no host-device copy (no sync).
    sigmas = torch.linspace(1.0, 0.0, args.steps + 1, device=device)
    # --query-score, else the model's (Wan: output_change, its self-attention has no text).
    cfg = engine_config(args, dtype, args.tau_q, args.tau_kv, meta.get("query_score"))
    engine = fe.FlashOmniEngine(cfg)
    result = dict(model=meta, steps=args.steps, schedule=dict(
        num_steps=args.steps, warmup=args.warmup, interval=args.interval,
        updates=engine.schedule.update_steps()), engine=dict(
        taylor_order=args.order, reuse_below=args.reuse_below, tau_q=args.tau_q,
        tau_kv=args.tau_kv, cache_dtype=args.cache_dtype, forecast_dtype=args.forecast_dtype,
        update_backend=cfg.update_backend,
        dense_q_above=cfg.dense_q_above, dense_fallback=cfg.dense_fallback,
        query_score=cfg.query_score, gemm_plans=cfg.gemm_plans))
    with torch.no_grad(), sdpa_context(device):
        dense_x, result["dense"] = dense_arm(name, forward, latents, sigmas, args, dense_setup,
                                             engine.schedule)
        fo_x, result["flashomni"] = flashomni_arm(name, forward, latents, sigmas, args, apply,
                                                  engine, device)
    result["speedup"] = result["dense"]["total_ms"] / result["flashomni"]["total_ms"]
    result["deviation"] = deviation(fo_x, dense_x)
    if device == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    used = meta["double_blocks"] + meta["single_blocks"]
    full = sum(meta["full_blocks"])
    if used != full:
        result["scaled_to_full_depth"] = dict(
            label=f"ESTIMATE: measured totals x {full}/{used} blocks (linear in depth; what "
                  f"runs outside the blocks, e.g. embedders, text refiner, final layer, is "
                  f"counted {full / used:.2f}x)",
            dense_total_ms=result["dense"]["total_ms"] * full / used,
            flashomni_total_ms=result["flashomni"]["total_ms"] * full / used)
    del model
    return result


def blocks_text(meta):
    if meta["single_blocks"] or meta["full_blocks"][1]:
        return f"{meta['double_blocks']} double + {meta['single_blocks']} single blocks"
    return f"{meta['double_blocks']} of {meta['full_blocks'][0]} blocks"


def print_summary(name, r):
    d, f = r["dense"], r["flashomni"]
    print(f"\n== {name}: {r['model']['tokens']} tokens, {blocks_text(r['model'])}, "
          f"{r['steps']} steps, query score {r['engine']['query_score']}")
    for arm, a in (("dense", d), ("flashomni", f)):
        kinds = "  ".join(f"{k} {v['mean_ms']:.2f}" for k, v in a["by_step_kind"].items()
                          if v["steps"])
        print(f"  {arm:9s} total {a['total_ms']:9.1f} ms  ({a['mean_step_ms']:.2f} ms/step; "
              f"mean ms per schedule step: {kinds})")
    print(f"  speedup {r['speedup']:.3f}x")
    for arm in ("dense", "flashomni"):
        split = r[arm].get("split")
        if split:
            parts = "  ".join(f"{c} {split['ms'][c]:.1f}" for c in CATEGORIES)
            per_step = "  ".join(f"{c} {split['per_step_ms'][c]:.2f}" for c in CATEGORIES)
            print(f"  {arm:9s} GPU kernel ms: {parts}; per step: {per_step}")
    counts = [str(f["layer_steps_by_kind"].get(k, 0))
              for k in ("update", "dispatch", "reuse", "dense")]
    print(f"  layer-steps update / dispatch / reuse / dense (fallback): {' / '.join(counts)}")
    dev = r["deviation"]
    print(f"  final latents vs dense: rel L2 {dev['rel_l2']:.4g}, PSNR {dev['psnr_db']:.2f} dB")
    if "scaled_to_full_depth" in r:
        s = r["scaled_to_full_depth"]
        print(f"  {s['label']}: dense {s['dense_total_ms']:.0f} ms, flashomni "
              f"{s['flashomni_total_ms']:.0f} ms")


def add_engine_args(ap):
    """The engine settings (engine_config reads them); bench/e2e_idle_probe.py shares them."""
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--order", type=int, default=2)
    ap.add_argument("--reuse-below", type=float, default=0.3)
    ap.add_argument("--tau-q", type=float, default=0.5)
    ap.add_argument("--tau-kv", type=float, default=0.15)
    ap.add_argument("--cache-dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--forecast-dtype", choices=("storage", "float32"), default="storage",
                    help="EngineConfig.forecast_dtype: the forecast of C a dispatch step reads "
                         "(storage: the model's dtype, None in the config)")
    ap.add_argument("--dense-fallback", action="store_true",
                    help="EngineConfig.dense_fallback: layers whose dispatch steps would cost more "
                         "than dense (flashomni.engine.dispatch_cost_ratio) run them densely")
    ap.add_argument("--dense-q-above", type=float, default=fe.EngineConfig.dense_q_above,
                    help="dispatch steps of layers above this query density project Q with "
                         "cuBLAS (1.0: always gemm_q)")
    ap.add_argument("--no-gemm-plans", action="store_true",
                    help="EngineConfig.gemm_plans off: every dispatch step's gemm_q and "
                         "gemm_o_dispatch plan their own work list (the A/B of the plans)")
    ap.add_argument("--query-score", choices=("text_image", "output_change"),
                    default=None,
                    help="what ranks query blocks for caching (EngineConfig.query_score; "
                         "default: text_image, for Wan output_change); "
                         "output_change keeps each layer's last update attention output")


def add_model_args(ap, hy_double=None, hy_single=None):
    """The models' depths and shapes (the builders read them); hy_double / hy_single: defaults
    (None: main picks them by mode)."""
    ap.add_argument("--flux-double", type=int, default=FLUX_FULL[0])
    ap.add_argument("--flux-single", type=int, default=FLUX_FULL[1])
    ap.add_argument("--hy-double", type=int, default=hy_double,
                    help="default 4 (sweep: 2)" if hy_double is None else None)
    ap.add_argument("--hy-single", type=int, default=hy_single,
                    help="default 8 (sweep: 4)" if hy_single is None else None)
    ap.add_argument("--hy-frames", type=int, default=32, help="latent frames")
    ap.add_argument("--hy-size", type=int, default=64, help="latent height = width")
    ap.add_argument("--wan-blocks", type=int, default=10,
                    help=f"Wan blocks (of {WAN_FULL[0]}; totals also scaled to full depth)")
    ap.add_argument("--wan-frames", type=int, default=21, help="latent frames (81 video)")
    ap.add_argument("--wan-height", type=int, default=60, help="latent height (480 px)")
    ap.add_argument("--wan-width", type=int, default=104, help="latent width (832 px)")


def main(argv=None):
    """argv: the arguments (None: sys.argv[1:]); tests/python/test_e2e_bench.py passes them."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="flux,hunyuan", help="comma list of flux, hunyuan, wan")
    ap.add_argument("--steps", type=int, default=50)
    add_engine_args(ap)
    ap.add_argument("--policy-sweep", nargs="?", const=SWEEP_DEFAULT, default=None,
                    metavar="TQ,TKV;...",
                    help=f"one model of --models: the FlashOmni arm per (tau_q, tau_kv) setting "
                         f"or 'reuse_all' (every dispatch step reuses every layer), speedup and "
                         f"PSNR each (default list {SWEEP_DEFAULT}; HunyuanVideo depth defaults "
                         f"to 2 double + 4 single blocks)")
    ap.add_argument("--sweep-budget-s", type=float, default=200.0,
                    help="skip the remaining sweep settings past this many seconds")
    add_model_args(ap)
    ap.add_argument("--no-split", action="store_true", help="skip the profiled generations")
    ap.add_argument("--smoke-cpu", action="store_true",
                    help="tiny shapes on the CPU oracle: exercises the script, measures nothing")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--tag", default="h100")
    args = ap.parse_args(argv)

    sweep = args.policy_sweep is not None
    if args.hy_double is None:
        args.hy_double = 2 if sweep else 4
    if args.hy_single is None:
        args.hy_single = 4 if sweep else 8
    if sweep:
        parse_sweep(args.policy_sweep)  # bad syntax fails before any GPU work
    device, dtype = ("cpu", torch.float32) if args.smoke_cpu else ("cuda", torch.bfloat16)
    if args.smoke_cpu:
        args.no_split = True
    else:
        require_gpu_kernels()
    builders = {"flux": build_flux, "hunyuan": build_hunyuan, "wan": build_wan}
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in builders]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {sorted(builders)}")
    out = dict(
        kind="SMOKE (CPU oracle, tiny shapes): not a measurement" if args.smoke_cpu else
        "measurement", date=datetime.datetime.now().isoformat(timespec="seconds"),
        commit=git_commit(), torch=torch.__version__, flashomni=flashomni.__version__,
        device=(torch.cuda.get_device_name() if device == "cuda" else "cpu"),
        args=vars(args), models={})
    os.makedirs(args.out, exist_ok=True)
    smoke = "_smoke" if args.smoke_cpu else ""
    if sweep:
        if len(models) != 1:
            ap.error(f"--policy-sweep: one model in --models, got {models}")
        full = {"flux": FLUX_FULL, "hunyuan": HUNYUAN_FULL, "wan": WAN_FULL}[models[0]]
        path = os.path.join(args.out, f"e2e_sweep_{args.tag}{smoke}.json")
        out["policy_sweep"] = run_policy_sweep(args, device, dtype, models[0], builders[models[0]],
                                               sys.modules[__name__], full)
        print_sweep(out["policy_sweep"])
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
        log(f"wrote {path}")
        return
    path = os.path.join(args.out, f"e2e_{args.tag}{smoke}.json")
    for name in models:
        out["models"][name] = run_model(name, builders[name], args, device, dtype)
        print_summary(name, out["models"][name])
        with open(path, "w") as f:  # after each model: a later failure keeps what was measured
            json.dump(out, f, indent=1)
        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
