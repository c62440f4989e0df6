"""The GEMM benchmarks' random cases without torch: the projection shape of a 24-head, d = 128
DiT and the Sq draw of each (op, M, density, seed), so the GPU tools (gemm_bench.py,
gemm_clock_probe.py) and the CPU models (gemm_round_model.py, gemm_floor.py) see the same draws.
"""
import numpy as np

HEADS, HEAD_DIM, BLOCK = 24, 128, 128


def case_seed(op, m, density, seed):
    """The generator seed of one case (op "q" or "o")."""
    return int(density * 1000) + m + (op == "o") + seed


def active_draw(rows, density, seed):
    """Random Sq as active[h, i] (head h, row block i), each pair active with probability
    `density`; exactly dense at 1."""
    q_blocks = (rows + BLOCK - 1) // BLOCK
    if density >= 1:
        return np.ones((HEADS, q_blocks), dtype=bool)
    return np.random.default_rng(seed).random((HEADS, q_blocks)) < density


def block_rows(rows):
    """Rows of each row block (the last may be partial)."""
    q_blocks = (rows + BLOCK - 1) // BLOCK
    return np.minimum(BLOCK, rows - np.arange(q_blocks) * BLOCK)


def dispatch_work(frac, extra):
    """Dispatch's work fraction: active head columns plus the always-active extra ones."""
    return (frac * HEADS * HEAD_DIM + extra) / (HEADS * HEAD_DIM + extra)
