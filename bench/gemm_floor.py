"""Memory floors of the sparse GEMMs against their ideal times, for the benchmarks' random Sq.

For each sparse row of a gemm_bench.py or gemm_clock_probe.py JSON, this adds up the DRAM bytes
that any kernel computing it must move, each byte once:
- gemm_q: X rows of row blocks with an active head, W_q rows of heads with an active block, and
  the active output tiles;
- gemm_o_dispatch: all of C (fp32 or 16-bit, as measured) and Y, A's active (row block, head)
  columns and the extra columns, and W_o's columns of heads with an active block plus the extra;
- gemm_o_update: A, W_o, C and Y, all of them.
floor = bytes / bandwidth. The JSON's copy bandwidth (gemm_bench's meta.copy_gbps) is used when
present, else --gbps. It also prints the H100's 3.35 TB/s peak. "most" = min(1, ideal / floor)
is the largest fraction of ideal that these bytes allow, with ideal = the JSON's cuBLAS time x
work. This counts bytes only; compute and latency make the real bound lower. Pure NumPy, no
GPU.

    python3 bench/gemm_floor.py bench/results/gemm_s14_h100/v12_e77b8b3/gemm_h100_*cache.json
    python3 bench/gemm_floor.py --gbps 2446 bench/results/gemm_s20_h100/ablate_s20x/*_ab0.json
"""
import argparse
import json

from gemm_cases import HEAD_DIM, HEADS, active_draw, block_rows, case_seed

N = HEADS * HEAD_DIM  # 3072: the output width of both projections
PEAK_GBPS = 3350.0  # H100 SXM HBM3


def case_bytes(op, m, k, density, cache_bytes, seed=0):
    """DRAM bytes of one case (bf16 operands; the cache is `cache_bytes` a value)."""
    base = op.removesuffix("_planned")
    extra = k - N
    if base == "gemm_o_update":
        return 2 * (m * k + N * k + m * N) + cache_bytes * m * N
    if not base.startswith("gemm_q") and base != "gemm_o_dispatch":
        raise ValueError(f"no byte model for op {op!r}")
    kind = "q" if base.startswith("gemm_q") else "o"
    active = active_draw(m, density, case_seed(kind, m, density, seed))  # [heads, row blocks]
    rows = block_rows(m)
    pair_elems = float((active * rows[None, :]).sum()) * HEAD_DIM  # active rows x head columns
    heads_used = int(active.any(axis=1).sum())
    if kind == "q":
        x = 2 * float(rows[active.any(axis=0)].sum()) * k
        return x + 2 * heads_used * HEAD_DIM * k + 2 * pair_elems
    a = 2 * (pair_elems + m * extra)
    w = 2 * N * (heads_used * HEAD_DIM + extra)
    return (cache_bytes + 2) * m * N + a + w


def floors(doc, gbps=None, seed=0):
    """One dict per sparse row of a benchmark JSON: bytes, floors, ideal and measured time."""
    meta = doc["meta"]
    gbps = meta.get("copy_gbps", gbps)
    if gbps is None:
        raise ValueError("the JSON has no meta.copy_gbps: pass --gbps")
    cache_bytes = 4 if meta.get("cache_dtype", "float32") == "float32" else 2
    out = []
    for r in doc.get("summary") or doc["rows"]:
        if r["op"] == "cublas_linear":
            continue
        ideal = r.get("ideal_ms") or r["cublas_ms"] * r["work"]
        b = case_bytes(r["op"], r["M"], r["K"], r["density"], cache_bytes, seed)
        floor_ms, peak_ms = b / gbps / 1e6, b / PEAK_GBPS / 1e6
        out.append(dict(op=r["op"], M=r["M"], K=r["K"], density=r["density"], mbytes=b / 1e6,
                        floor_ms=floor_ms, peak_floor_ms=peak_ms, ideal_ms=ideal, ms=r["ms"],
                        frac_of_ideal=r["frac_of_ideal"], most=min(1.0, ideal / floor_ms),
                        most_at_peak=min(1.0, ideal / peak_ms)))
    return out, gbps


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("json", nargs="+")
    ap.add_argument("--gbps", type=float, default=None,
                    help="copy bandwidth in GB/s when the JSON has none (the probe's do not)")
    ap.add_argument("--seed", type=int, default=0, help="the run's --seed")
    args = ap.parse_args(argv)
    for path in args.json:
        with open(path) as f:
            doc = json.load(f)
        try:
            rows, gbps = floors(doc, args.gbps, args.seed)
        except ValueError as e:
            ap.error(f"{path}: {e}")
        cache = doc["meta"].get("cache_dtype", "float32")
        print(f"{path}: cache {cache}, floors at {gbps:.0f} / {PEAK_GBPS:.0f} GB/s")
        print(f"{'op':26s} {'M':>6s} {'K':>6s} {'d':>5s} {'MB':>7s} {'floor us':>15s} "
              f"{'ideal':>7s} {'ours':>7s} {'of ideal':>8s} {'most':>11s}")
        for r in rows:
            print(f"{r['op']:26s} {r['M']:6d} {r['K']:6d} {r['density']:5.2f} {r['mbytes']:7.1f} "
                  f"{1e3 * r['floor_ms']:7.1f} /{1e3 * r['peak_floor_ms']:6.1f} "
                  f"{1e3 * r['ideal_ms']:7.1f} {1e3 * r['ms']:7.1f} {r['frac_of_ideal']:8.2f} "
                  f"{r['most']:5.2f} /{r['most_at_peak']:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
