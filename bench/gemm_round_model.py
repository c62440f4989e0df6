"""Round model of the persistent GEMM-Q list: predicts, for the random Sq of bench/gemm_bench.py,
how many tile times the planner's list takes on the persistent CTAs, with and without tall items
(gemm_planner.cu: plan_q_groups / plan_q_paired), against the work it holds.

A whole (2-head) or tall (2 row tiles x 1 head) item costs one tile time; a one-head item (a
partial group, or a half of the last round) `--half-cost` of one (H100 clock64 trace, session 7:
0.66 in the steady state, ~0.8 when it is a CTA's only item). The CTAs take one item per round,
longest first, so a round costs its longest item. Pure NumPy: runs anywhere, no GPU.
Usage: python3 bench/gemm_round_model.py [--seeds 0 1 2] [--ctas 132]
"""
import argparse

import numpy as np
from gemm_cases import HEADS, active_draw, case_seed


def last_round_split(full, partial, ctas):
    rest = full % ctas
    return full if rest == 0 or 2 * rest + partial > ctas else full - rest


def plan(active, ctas, tall):
    """Item costs in list order (1.0 whole / tall, 'h' one-head) as the planner emits them."""
    count = active.sum(0)
    whole = int((count // 2).sum())
    if tall:
        leftover = [int(np.nonzero(active[:, i])[0][-1]) for i in range(active.shape[1])
                    if count[i] % 2]
        per_head = np.bincount(leftover, minlength=HEADS)
        pairs, singles = int((per_head // 2).sum()), int((per_head % 2).sum())
    else:
        pairs, singles = 0, int((count % 2).sum())
    full = whole + pairs
    split_from = last_round_split(full, singles, ctas)
    return ["w"] * split_from + ["h"] * (2 * (full - split_from) + singles)


def tile_times(items, ctas, half_cost):
    cost = [1.0 if c == "w" else half_cost for c in items]
    return sum(max(cost[r:r + ctas]) for r in range(0, len(cost), ctas))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="*", default=[4608, 16896, 33792])
    ap.add_argument("--densities", type=float, nargs="*", default=[0.5, 0.25, 0.1])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--ctas", type=int, default=132)
    ap.add_argument("--half-cost", type=float, default=0.75)
    args = ap.parse_args()
    print("M      d     seed  items(now/tall)  tile times now / tall  work  tall/now")
    for m in args.rows:
        for d in args.densities:
            for seed in args.seeds:
                active = active_draw(m, d, case_seed("q", m, d, seed))
                now, tall = plan(active, args.ctas, False), plan(active, args.ctas, True)
                t_now = tile_times(now, args.ctas, args.half_cost)
                t_tall = tile_times(tall, args.ctas, args.half_cost)
                work = active.sum() / 2 / args.ctas
                print(f"{m:6d} {d:4.2f} {seed:5d}  {len(now):5d} / {len(tall):5d}"
                      f"     {t_now:6.2f} / {t_tall:6.2f}     {work:5.2f}  {t_tall / t_now:6.3f}")


if __name__ == "__main__":
    main()
