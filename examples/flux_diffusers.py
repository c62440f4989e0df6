"""FlashOmni in a diffusers FLUX transformer: install the processors, give the engine the step,
sample, and compare with the stock model.

    engine = FlashOmniEngine(EngineConfig(schedule=ScheduleConfig(num_steps=steps)))
    undo = apply_flux(model, engine)   # FluxTransformer2DModel: processors + fused proj_out
    for s in range(steps):
        engine.set_step(s)             # or pipe(..., callback_on_step_end=engine.pipeline_callback)
        v = model(...)
    undo()

The model has random weights (nothing is downloaded). Default: a small FLUX-like model on the
CPU backend (seconds, measures nothing); --full: the FLUX.1-dev shape (19 + 38 blocks, 24 heads x
128, 1024 x 1024 -> 4096 image + 512 text tokens) in bf16 on a CUDA GPU. Prints each step's kind
(update / dispatch), the time of both runs and how far FlashOmni's final latents are from the
stock model's (relative L2, PSNR). bench/e2e_bench.py is the full benchmark.

    PYTHONPATH=python FLASHOMNI_LIBRARY=build/libflashomni.so python3 examples/flux_diffusers.py
"""

import argparse
import math
import sys
import time

import torch
from diffusers import FluxTransformer2DModel

from flashomni import engine as fe
from flashomni.diffusers import apply_flux


def build(full, device, dtype):
    if full:
        cfg = dict(num_layers=19, num_single_layers=38, attention_head_dim=128,
                   num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                   axes_dims_rope=(16, 56, 56), in_channels=64)
        side, n_txt = 64, 512
    else:
        cfg = dict(num_layers=2, num_single_layers=2, attention_head_dim=64, num_attention_heads=2,
                   joint_attention_dim=64, pooled_projection_dim=32, axes_dims_rope=(16, 24, 24),
                   in_channels=16)
        side, n_txt = 16, 64
    torch.manual_seed(0)
    model = FluxTransformer2DModel(patch_size=1, guidance_embeds=True, **cfg)
    model = model.to(device, dtype).eval().requires_grad_(False)
    g = torch.Generator(device=device).manual_seed(1)
    ctx = torch.randn(1, n_txt, cfg["joint_attention_dim"], device=device, generator=g).to(dtype)
    pooled = torch.randn(1, cfg["pooled_projection_dim"], device=device, generator=g).to(dtype)
    img_ids = torch.zeros(side * side, 3, device=device)
    img_ids[:, 1] = torch.arange(side, device=device).repeat_interleave(side)
    img_ids[:, 2] = torch.arange(side, device=device).repeat(side)
    txt_ids = torch.zeros(n_txt, 3, device=device)
    latents = torch.randn(1, side * side, cfg["in_channels"], device=device, generator=g)
    guidance = torch.full((1,), 3.5, device=device)

    def velocity(x, sigma):
        return model(hidden_states=x.to(dtype), encoder_hidden_states=ctx,
                     pooled_projections=pooled, timestep=sigma.reshape(1), img_ids=img_ids,
                     txt_ids=txt_ids, guidance=guidance, return_dict=False)[0].float()

    return model, latents, velocity, side * side + n_txt


def sample(velocity, latents, sigmas, engine=None):
    """Flow-matching Euler; returns the final latents and the wall time in ms."""
    x = latents.clone()
    if x.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(len(sigmas) - 1):
        if engine is not None:
            engine.set_step(s)
        x = x + (sigmas[s + 1] - sigmas[s]) * velocity(x, sigmas[s])
    if x.is_cuda:
        torch.cuda.synchronize()
    return x, (time.perf_counter() - t0) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="FLUX.1-dev shape on a CUDA GPU (bf16)")
    ap.add_argument("--steps", type=int, default=None, help="default 12 (CPU) / 50 (--full)")
    ap.add_argument("--warmup", type=int, default=None, help="dense steps first (default 2 / 8)")
    ap.add_argument("--interval", type=int, default=None, help="an update every N (3 / 5)")
    ap.add_argument("--tau-q", type=float, default=None,
                    help="query-caching threshold (default 2.0 on the tiny model, whose random "
                         "attention the reference 0.5 would leave dense; 0.5 with --full)")
    args = ap.parse_args(argv)
    device, dtype = ("cuda", torch.bfloat16) if args.full else ("cpu", torch.float32)
    if args.full and not torch.cuda.is_available():
        ap.error("--full needs a CUDA GPU")
    steps = args.steps or (50 if args.full else 12)
    warmup = args.warmup if args.warmup is not None else (8 if args.full else 2)
    interval = args.interval or (5 if args.full else 3)
    tau_q = args.tau_q if args.tau_q is not None else (0.5 if args.full else 2.0)
    model, latents, velocity, tokens = build(args.full, device, dtype)
    sigmas = torch.linspace(1.0, 0.0, steps + 1, device=device)
    print(f"FLUX-like model on {device}: {tokens} tokens, {steps} steps")

    with torch.no_grad():
        sample(velocity, latents, sigmas[:2])  # warm-up (first launches, allocator)
        dense, dense_ms = sample(velocity, latents, sigmas)
        engine = fe.FlashOmniEngine(fe.EngineConfig(
            schedule=fe.ScheduleConfig(num_steps=steps, warmup=warmup, interval=interval),
            policy=fe.PolicyConfig(tau_q=tau_q)))
        undo = apply_flux(model, engine)
        try:
            # Warm-up through the first dispatch step (first launches, buffers), as for dense.
            sample(velocity, latents, sigmas[:warmup + 2], engine)
            engine.reset()
            fast, fast_ms = sample(velocity, latents, sigmas, engine)
        finally:
            undo()  # the stock processors again
    kinds = []
    for s in range(steps):
        reports = engine.step_reports(s).values()
        kind = max((r.kind.name.lower() for r in reports), default="?")
        density = sum(r.query_density for r in reports) / max(len(reports), 1)
        kinds.append(kind if kind == "update" else f"{kind} ({density:.2f})")
    print("steps: " + ", ".join(f"{s}: {k}" for s, k in enumerate(kinds)))
    rel = ((fast - dense).norm() / dense.norm()).item()
    peak = (dense.max() - dense.min()).item()  # the peak bench/e2e_bench.py uses
    mse = ((fast - dense) ** 2).mean().item()
    psnr = 10 * math.log10(peak * peak / mse) if mse > 0 else float("inf")
    print(f"stock {dense_ms:.0f} ms, FlashOmni {fast_ms:.0f} ms ({dense_ms / fast_ms:.2f}x)"
          f"{'' if args.full else ' (CPU backend: the timing means nothing)'}")
    print(f"final latents vs stock: relative L2 {rel:.3e}, PSNR {psnr:.1f} dB")
    return 0 if math.isfinite(rel) else 1


if __name__ == "__main__":
    sys.exit(main())
