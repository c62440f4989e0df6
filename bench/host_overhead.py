"""Host time per call of the FlashOmni ops against the torch calls they replace, on the GPU
machine's CPU: tiny CUDA tensors (the GPU finishes each kernel before the host issues the next
call, so calls per second measure the host), no profiler; then the share of each call spent in
the C library (libflashomni's host side: validation, planning, tensor maps, launches) and, with
--profile, cProfile's list of the Python functions that take the rest.

Why: at FLUX's 4608 tokens the FlashOmni steps are host-bound (bench/results/
idle_probe_h100_16f0762: the GPU idles in ~1800 short gaps per 5 steps, each kernel starting
within microseconds of its launch call; the engine's stages take ~90 ms of host per step).

    PYTHONPATH=python FLASHOMNI_LIBRARY=... python3 bench/host_overhead.py [--profile]
"""

import argparse
import cProfile
import json
import os
import pstats
import time

import numpy as np
import torch
import torch.nn.functional as F

import flashomni as fo
from flashomni import _lib, ops, policy


def per_call_us(fn, n):
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    dev, bf = "cuda", torch.bfloat16
    heads, d, n = 2, 128, 256
    torch.manual_seed(0)
    x = torch.randn(1, n, heads * d, device=dev, dtype=bf)
    w = torch.randn(heads * d, heads * d, device=dev, dtype=bf)
    b = torch.randn(heads * d, device=dev, dtype=bf)
    q = torch.randn(1, n, heads, d, device=dev, dtype=bf)
    rng = np.random.default_rng(0)
    q_mask = rng.random((1, heads, 2)) < 0.6
    q_mask[0, 0, 0] = True
    sym = fo.Symbols.from_masks(q_mask, np.ones((1, heads, 2, 2), bool), seqlen_q=n,
                                seqlen_kv=n).to(dev)
    cache = torch.zeros(1, n, heads * d, device=dev)
    points = [torch.randn(1, n, heads * d, device=dev) for _ in range(3)]
    fc_out = torch.empty_like(points[0])
    qt = q.transpose(1, 2)
    calls = {
        "torch F.linear": lambda: F.linear(x, w, b),
        "torch sdpa": lambda: F.scaled_dot_product_attention(qt, qt, qt),
        "torch zeros [n, h*d] bf16": lambda: torch.zeros(1, n, heads, d, device=dev, dtype=bf),
        "torch empty [n, h*d] bf16": lambda: torch.empty(1, n, heads, d, device=dev, dtype=bf),
        "fo gemm_q": lambda: ops.gemm_q(x, w, b, heads=heads, symbols=sym),
        "fo sparse_attention": lambda: ops.sparse_attention(q, q, q, sym),
        "fo gemm_o_dispatch": lambda: ops.gemm_o_dispatch(x, w, cache, heads=heads, head_dim=d,
                                                          symbols=sym),
        "fo forecast (3 points)": lambda: policy.forecast(points, [3, 8, 13], 15, order=2,
                                                          out=fc_out),
    }
    # Time inside the C library, per call of each op.
    real_call = _lib.call
    in_lib = {"t": 0.0}

    def timed_call(name, *a):
        t = time.perf_counter()
        try:
            return real_call(name, *a)
        finally:
            in_lib["t"] += time.perf_counter() - t

    results = {}
    for name, fn in calls.items():
        total = per_call_us(fn, args.calls)
        lib_us = None
        if name.startswith("fo "):
            _lib.call = timed_call
            in_lib["t"] = 0.0
            per_call_us(fn, args.calls)
            lib_us = in_lib["t"] / (args.calls + 10) * 1e6
            _lib.call = real_call
        results[name] = dict(us_per_call=round(total, 1),
                             us_in_libflashomni=None if lib_us is None else round(lib_us, 1))
        print(f"{name:28s} {total:7.1f} us/call" +
              ("" if lib_us is None else f"  ({lib_us:.1f} us in libflashomni)"), flush=True)
    out = dict(device=torch.cuda.get_device_name(), torch=torch.__version__,
               commit=os.environ.get("FLASHOMNI_COMMIT", "unknown"),
               date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), calls=results)
    if args.profile:
        fo_calls = [fn for name, fn in calls.items() if name.startswith("fo ")]
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(args.calls):
            for fn in fo_calls:
                fn()
        pr.disable()
        torch.cuda.synchronize()
        stats = pstats.Stats(pr).sort_stats("tottime")
        stats.print_stats(25)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "host_overhead.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
