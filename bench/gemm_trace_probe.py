"""FlashOmni probe: where a GEMM-Q tile's cycles go, from a trace build of the kernel.

Needs a library built with scripts/gemm_trace.patch applied (scripts/gpu_gemm_trace.sh says how,
and runs this on the GPU): each consumer warpgroup then records clock64 at a tile's start, after its mainloop drained
and after its epilogue was issued, per CTA and tile, for the last launch. For each case this
prints, per k-block of a 128 x 256 x 64 tile, the mainloop's cycles against the tensor cores'
1024 (4096 dense bf16 FLOP per SM and clock), the epilogue and the gap to the next tile, the
start-up and the spread of the CTAs' end times; the raw trace goes to --out as .npz.

    FLASHOMNI_LIBRARY=build-trace/libflashomni.so python3 bench/gemm_trace_probe.py --out DIR
"""

import argparse
import ctypes
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gemm_bench as gb  # noqa: E402
import flashomni as fo  # noqa: E402

CTAS, TILES = 160, 64
KBLOCK_CLOCKS = {256: 1024.0, 128: 512.0}  # 128 rows x N x 64 x 2 FLOP at 4096 FLOP / clock


def read_trace(lib):
    trace = np.zeros((CTAS, TILES, 2, 8), dtype=np.int64)
    meta = np.zeros((CTAS, 6), dtype=np.int64)
    rc = lib.flashomni_debug_gemm_trace(trace.ctypes.data_as(ctypes.c_void_p),
                                        meta.ctypes.data_as(ctypes.c_void_p))
    if rc != 0:
        raise RuntimeError(f"flashomni_debug_gemm_trace failed ({rc})")
    return trace, meta


def summarise(trace, meta, grid):
    ml, epi, gap, per_kb = [], [], [], {128: [], 256: []}
    starts, tails, pass0, pass_wait, pass1 = [], [], [], [], []
    part_store, owner_wait, owner_add, owner_epi = [], [], [], []
    loop_step, decode = [], []
    for c in range(grid):
        n = int(meta[c, 0])
        for w in range(2):
            ev = trace[c, :n, w]
            for i in range(n):
                kb = int(ev[i, 3] & 0xFFFF)
                slots = int((ev[i, 3] >> 16) & 0xFF)
                width = 128 if slots <= 1 else 256
                m = ev[i, 1] - ev[i, 0]
                ml.append(m)
                if kb:
                    per_kb[width].append(m / kb)
                split = int(ev[i, 3] >> 24)
                if split == 0:
                    epi.append(ev[i, 2] - ev[i, 1])
                    if ev[i, 4] > ev[i, 1] and ev[i, 5] > ev[i, 4]:
                        pass0.append(ev[i, 4] - ev[i, 1])
                        pass_wait.append(ev[i, 5] - ev[i, 4])
                        pass1.append(ev[i, 2] - ev[i, 5])
                elif (split >> 2) & 3:
                    part_store.append(ev[i, 2] - ev[i, 1])
                else:
                    owner_wait.append(ev[i, 6] - ev[i, 1])
                    owner_add.append(ev[i, 7] - ev[i, 6])
                    owner_epi.append(ev[i, 2] - ev[i, 7])
                if i + 1 < n:
                    gap.append(ev[i + 1, 0] - ev[i, 2])
                    if int(ev[i + 1, 3] >> 24) == 0 and ev[i + 1, 0] >= ev[i + 1, 7] >= ev[i, 2]:
                        loop_step.append(ev[i + 1, 7] - ev[i, 2])
                        decode.append(ev[i + 1, 0] - ev[i + 1, 7])
            if n:
                starts.append(ev[0, 0] - meta[c, 1])
                tails.append(meta[c, 3] - ev[n - 1, 2])
    freq = (meta[:grid, 3] - meta[:grid, 1]) / np.maximum(meta[:grid, 4] - meta[:grid, 2], 1)
    span_ns = int(meta[:grid, 4].max() - meta[:grid, 2].min())
    end_ns = meta[:grid, 4] - meta[:grid, 2].min()

    def stats(v):
        v = np.asarray(v, dtype=np.float64)
        return None if v.size == 0 else {"mean": float(v.mean()), "p10": float(np.percentile(v, 10)),
                                         "p90": float(np.percentile(v, 90))}

    return {
        "ghz": float(np.median(freq)),
        "span_us": span_ns / 1e3,
        "cta_end_us": stats(end_ns / 1e3),
        "tiles_per_cta": stats(meta[:grid, 0]),
        "mainloop_clk": stats(ml),
        "clk_per_kblock_n256": stats(per_kb[256]),
        "clk_per_kblock_n128": stats(per_kb[128]),
        "kblock_efficiency_n256": (KBLOCK_CLOCKS[256] / np.mean(per_kb[256])) if per_kb[256] else None,
        "epilogue_clk": stats(epi),
        "gap_clk": stats(gap),
        "gap_loop_step_clk": stats(loop_step),
        "gap_get_tile_clk": stats(decode),
        "pass0_clk": stats(pass0),
        "pass1_read_wait_clk": stats(pass_wait),
        "pass1_clk": stats(pass1),
        "split_part_store_clk": stats(part_store),
        "split_owner_wait_clk": stats(owner_wait),
        "split_owner_add_clk": stats(owner_add),
        "split_owner_epilogue_clk": stats(owner_epi),
        "start_clk": stats(starts),
        "tail_clk": stats(tails),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gemm-trace")
    ap.add_argument("--cases", nargs="*", default=["16896:1", "4608:1", "16896:0.25", "4608:0.25",
                                                   "4608:0.1", "33792:1"])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lib = ctypes.CDLL(os.environ["FLASHOMNI_LIBRARY"])
    lib.flashomni_debug_gemm_trace.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    grid = torch.cuda.get_device_properties(0).multi_processor_count
    w = torch.randn(3072, 3072, device="cuda", dtype=torch.bfloat16) / 64
    report = {"device": torch.cuda.get_device_name(0), "commit": os.environ.get("FLASHOMNI_COMMIT"),
              "cases": {}}
    for case in args.cases:
        rows, density = case.split(":")
        rows, density = int(rows), float(density)
        x = torch.randn(rows, 3072, device="cuda", dtype=torch.bfloat16)
        s = gb.symbols(rows, density, 3)[0] if density < 1 else None
        run = lambda: fo.gemm_q(x, w, None, heads=gb.HEADS, head_dim=gb.HEAD_DIM, symbols=s)  # noqa
        ms = gb.time_op(run, 4, 12)
        cublas = gb.time_op(lambda: torch.nn.functional.linear(x, w), 4, 12)
        for _ in range(20):
            run()
        torch.cuda.synchronize()
        trace, meta = read_trace(lib)
        used = int((meta[:, 0] > 0).sum())
        summary = summarise(trace, meta, min(grid, CTAS))
        summary.update({"ms": ms, "cublas_ms": cublas, "ctas_with_tiles": used})
        report["cases"][case] = summary
        np.savez_compressed(out / f"trace_{rows}_{density}.npz", trace=trace, meta=meta)
        print(case, json.dumps(summary, indent=None), flush=True)
    (out / "trace_summary.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
