"""FlashOmni end-to-end benchmark, the policy sweep (bench/e2e_bench.py --policy-sweep): one
model, one dense generation, then one FlashOmni generation per setting, each with its speedup and
the PSNR of its final latents against dense. No profiled split.

A setting is "tau_q,tau_kv" (the reference policy with those thresholds; "tau_q,tau_kv,bfloat16"
or ",float32" also picks the cache dtype, else --cache-dtype) or "reuse_all": a policy
that caches every query block, so every layer reuses at every dispatch step (the Taylor forecast
alone: step caching without any sparse kernel) — the reference that says how much of a setting's
speed and deviation the sparse symbols account for.
"""

import time

import torch

from flashomni import engine as fe

SWEEP_DEFAULT = "0.5,0.15;1.0,0.5;2.0,1.0"


CACHE_DTYPES = ("float32", "bfloat16")


def parse_sweep(text):
    """ "tq,tkv;tq,tkv,bfloat16;reuse_all" -> [(tq, tkv, None), (tq, tkv, "bfloat16"),
    "reuse_all", ...]."""
    items = []
    for item in (i.strip() for i in text.split(";")):
        if item == "reuse_all":
            items.append(item)
            continue
        parts = item.split(",")
        cache = parts.pop() if len(parts) == 3 and parts[2] in CACHE_DTYPES else None
        try:
            pair = tuple(float(v) for v in parts)
        except ValueError:
            pair = ()
        if len(pair) != 2:
            raise SystemExit(f"argument --policy-sweep: expected 'tau_q,tau_kv[,cache dtype]' or "
                             f"'reuse_all' settings separated by ';', got {text!r}")
        items.append(pair + (cache,))
    return items


def reuse_all_policy(q, k, **kw):
    """The reference policy's symbols with every query block cached: query density 0, below any
    reuse_below > 0, so each layer's dispatch steps are whole-layer reuse."""
    return fe._all_cached_like(fe.flashomni_policy(q, k, **kw))


def run_policy_sweep(args, device, dtype, name, builder, arms, full_blocks):
    """arms: the e2e_bench module (log, dense_arm, flashomni_arm, engine_config, deviation,
    sdpa_context). A setting is skipped (and listed) when the last one's time says it would end
    past --sweep-budget-s."""
    t0 = time.perf_counter()
    settings = parse_sweep(args.policy_sweep)
    arms.log(f"sweep: building the {name}-shaped model (random weights)")
    model, latents, forward, apply, meta, dense_setup = builder(args, device, dtype)
    sigmas = torch.linspace(1.0, 0.0, args.steps + 1, device=device)
    used = meta["double_blocks"] + meta["single_blocks"]
    depth = ("full depth" if used == sum(full_blocks) else
             f"reduced depth ({meta['double_blocks']} + {meta['single_blocks']} blocks of the "
             f"real {full_blocks[0]} + {full_blocks[1]}); totals are not scaled")
    result = dict(model_name=name, model=meta, steps=args.steps,
                  note=f"policy sweep at {depth}; no profiled split",
                  budget_s=args.sweep_budget_s, engine=dict(
                      taylor_order=args.order, reuse_below=args.reuse_below,
                      cache_dtype=args.cache_dtype, dense_q_above=args.dense_q_above,
                      warmup=args.warmup, interval=args.interval),
                  settings=[], skipped=[])
    args.no_split = True
    query_score = meta.get("query_score")
    with torch.no_grad(), arms.sdpa_context(device):
        schedule = fe.Schedule(arms.engine_config(args, dtype, 0.0, 0.0).schedule)
        dense_x, result["dense"] = arms.dense_arm("sweep", forward, latents, sigmas, args,
                                                  dense_setup, schedule)
        del result["dense"]["per_step_ms"]
        last_s = 0.0
        for i, setting in enumerate(settings):
            reuse_all = setting == "reuse_all"
            tq, tkv, cache = (None, None, None) if reuse_all else setting
            name = "reuse_all" if reuse_all else f"tau_q={tq} tau_kv={tkv}"
            if cache is not None:
                name += f" cache={cache}"
            elapsed = time.perf_counter() - t0
            if elapsed + last_s > args.sweep_budget_s:
                result["skipped"].append(dict(setting=name, reason=(
                    f"{elapsed:.0f} s elapsed + {last_s:.0f} s for the last setting > budget "
                    f"{args.sweep_budget_s} s")))
                continue
            t1 = time.perf_counter()
            config = arms.engine_config(args, dtype, tq or 0.0, tkv or 0.0, query_score,
                                        cache_dtype=cache)
            if reuse_all and config.reuse_below <= 0.0:
                raise SystemExit("--policy-sweep reuse_all needs --reuse-below > 0")
            engine = fe.FlashOmniEngine(config, reuse_all_policy if reuse_all else None)
            label = f"sweep {name}"
            fo_x, r = arms.flashomni_arm(label, forward, latents, sigmas, args, apply, engine,
                                         device, warm=i == 0, split=False)
            disp = [p for p in r.pop("per_step") if p["dispatch"]]
            dev = arms.deviation(fo_x, dense_x)
            result["settings"].append(dict(
                setting=name, tau_q=tq, tau_kv=tkv, cache_dtype=cache or args.cache_dtype,
                total_ms=r["total_ms"],
                # Mean ms of the schedule's update and dispatch steps (reuse_all: a dispatch step
                # is every layer reusing).
                by_step_kind={k: round(v["mean_ms"], 2) for k, v in r["by_step_kind"].items()
                              if v["mean_ms"] is not None},
                speedup=result["dense"]["total_ms"] / r["total_ms"], psnr_db=dev["psnr_db"],
                rel_l2=dev["rel_l2"], layer_steps_by_kind=r["layer_steps_by_kind"],
                mean_dispatch_query_density=(
                    round(sum(p["query_density"] for p in disp) / len(disp), 4) if disp else None),
                mean_dispatch_pair_density=(
                    round(sum(p["pair_density"] for p in disp) / len(disp), 4) if disp else None),
                syncs=r.get("dispatch_step_syncs_seen_by_torch")))
            del engine, fo_x
            if device == "cuda":
                torch.cuda.empty_cache()
            last_s = time.perf_counter() - t1
    result["wall_s"] = time.perf_counter() - t0
    del model
    return result


def print_sweep(r):
    m = r["model"]
    print(f"\n== policy sweep ({r['model_name']} shape): {m['tokens']} tokens, "
          f"{m['double_blocks']} + {m['single_blocks']} blocks, {r['steps']} steps; dense "
          f"{r['dense']['total_ms']:.1f} ms")
    for s in r["settings"]:
        steps = " / ".join(f"{k} {v:.1f}" for k, v in s["by_step_kind"].items())
        print(f"  {s['setting']:24s}: {s['total_ms']:9.1f} ms  speedup {s['speedup']:.3f}x  "
              f"PSNR {s['psnr_db']:.2f} dB  dispatch query density "
              f"{s['mean_dispatch_query_density']}  kinds {s['layer_steps_by_kind']}  "
              f"mean step ms {steps}")
    for s in r["skipped"]:
        print(f"  skipped {s['setting']}: {s['reason']}")
