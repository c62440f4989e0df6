"""GPU time per kernel of one policy run (flashomni.policy.run_policy) at the end-to-end shapes:
B = 1, H = 24, d = 128, bf16, 512 text tokens first, step 20 of 50; torch.profiler over
--calls runs after warm-ups, mean device time per call of each kernel. Complements
tests/gpu/policy_check's whole-policy timing with the split (pooling, logits, choice).

    PYTHONPATH=python FLASHOMNI_LIBRARY=... python3 bench/policy_kernels.py [--tokens 4608,33792]
"""

import argparse
import collections
import json
import os

import torch

from flashomni import policy


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", default="4608,16896,33792")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--tag", default="h100")
    args = ap.parse_args()
    out = dict(device=torch.cuda.get_device_name(),
               commit=os.environ.get("FLASHOMNI_COMMIT", "unknown"), sizes={})
    for n in (int(t) for t in args.tokens.split(",")):
        g = torch.Generator(device="cuda").manual_seed(n)
        q, k = (torch.randn(1, n, 24, 128, device="cuda", generator=g).to(torch.bfloat16)
                for _ in range(2))

        def run():
            return policy.run_policy(q, k, step=20, num_steps=50, text=[(0, 512)])

        for _ in range(3):
            run()
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(args.calls):
                run()
            torch.cuda.synchronize()
        per = collections.Counter()
        for e in prof.key_averages():
            t = getattr(e, "device_time_total", 0) or 0
            if t > 0:
                per[e.key[:90]] += t / args.calls
        out["sizes"][n] = {k: round(v, 2) for k, v in per.most_common()}
        total = sum(per.values())
        print(f"N = {n}: {total:.1f} us of kernels per policy run")
        for name, us in per.most_common(8):
            print(f"  {us:8.2f} us  {name}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"policy_kernels_{args.tag}.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
