"""FlashOmni Python tests: the GEMM memory-floor model (bench/gemm_floor.py) and the shared case
draws (bench/gemm_cases.py). Pure NumPy: byte counts against closed forms, the dense limits and
the floor arithmetic on a small synthetic benchmark JSON."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import gemm_cases  # noqa: E402
import gemm_floor  # noqa: E402

M, N = 4608, 3072


@pytest.mark.parametrize("cache_bytes", [2, 4])
@pytest.mark.parametrize("k", [3072, 15360])
def test_update_moves_every_operand_once_and_dense_dispatch_the_same(cache_bytes, k):
    update = gemm_floor.case_bytes("gemm_o_update", M, k, 0.25, cache_bytes)
    assert update == 2 * (M * k + N * k + M * N) + cache_bytes * M * N
    assert gemm_floor.case_bytes("gemm_o_dispatch_planned", M, k, 1.0, cache_bytes) == update


def test_dense_gemm_q_reads_x_and_w_and_writes_q():
    want = 2 * (M * 3072 + N * 3072 + M * N)
    assert gemm_floor.case_bytes("gemm_q", M, 3072, 1.0, 4) == want
    assert gemm_floor.case_bytes("gemm_q_dense_nobias", M, 3072, 1.0, 4) == want


@pytest.mark.parametrize("cache_bytes", [2, 4])
def test_dispatch_with_nothing_active_still_reads_c_writes_y_and_the_extra_columns(cache_bytes):
    extra = 12288
    got = gemm_floor.case_bytes("gemm_o_dispatch", 1000, N + extra, 0.0, cache_bytes)
    assert got == (cache_bytes + 2) * 1000 * N + 2 * 1000 * extra + 2 * N * extra


def test_sparse_dispatch_counts_the_drawn_pairs_and_every_used_head():
    m, d = 1000, 0.25  # 8 row blocks, the last of 104 rows
    active = gemm_cases.active_draw(m, d, gemm_cases.case_seed("o", m, d, 0))
    rows = gemm_cases.block_rows(m)
    assert rows.sum() == m and rows[-1] == 104
    pairs = sum(int(rows[i]) for h in range(24) for i in range(8) if active[h, i])
    heads = int(active.any(axis=1).sum())
    want = 6 * m * N + 2 * pairs * 128 + 2 * N * heads * 128
    assert gemm_floor.case_bytes("gemm_o_dispatch", m, N, d, 4) == want
    assert gemm_floor.case_bytes("gemm_o_dispatch", m, N, 0.5, 4) > want


def test_floors_divide_by_the_runs_copy_bandwidth_and_cap_at_one():
    doc = {"meta": {"copy_gbps": 2000.0, "cache_dtype": "bfloat16"},
           "rows": [{"op": "cublas_linear", "M": M, "K": 3072, "density": 1.0, "ms": 0.1},
                    {"op": "gemm_o_dispatch", "M": M, "K": 3072, "density": 0.1, "ms": 0.05,
                     "ideal_ms": 0.01, "frac_of_ideal": 0.2},
                    {"op": "gemm_o_update", "M": M, "K": 3072, "density": 1.0, "ms": 0.2,
                     "cublas_ms": 0.15, "work": 1.0, "frac_of_ideal": 0.75}]}
    rows, gbps = gemm_floor.floors(doc)
    assert gbps == 2000.0 and [r["op"] for r in rows] == ["gemm_o_dispatch", "gemm_o_update"]
    disp, upd = rows
    b = gemm_floor.case_bytes("gemm_o_dispatch", M, 3072, 0.1, 2)
    assert disp["floor_ms"] == pytest.approx(b / 2000.0 / 1e6)
    assert disp["most"] == pytest.approx(0.01 / disp["floor_ms"]) and disp["most"] < 1
    assert disp["frac_of_ideal"] == pytest.approx(0.2)
    assert upd["ideal_ms"] == pytest.approx(0.15) and upd["most"] == 1.0


def test_a_json_without_a_bandwidth_needs_one():
    doc = {"meta": {}, "summary": [{"op": "gemm_q", "M": 256, "K": 3072, "density": 0.5,
                                     "ms": 0.01, "cublas_ms": 0.02, "work": 0.5,
                                     "frac_of_ideal": 1.0}]}
    with pytest.raises(ValueError, match="--gbps"):
        gemm_floor.floors(doc)
    rows, _ = gemm_floor.floors(doc, gbps=1000.0)
    assert rows[0]["ideal_ms"] == pytest.approx(0.01)


def test_unknown_ops_are_refused():
    with pytest.raises(ValueError, match="gemm_x"):
        gemm_floor.case_bytes("gemm_x", 256, 3072, 0.5, 4)


def test_the_draw_is_dense_at_one_and_seeded():
    assert gemm_cases.active_draw(300, 1.0, 5).all()
    a = gemm_cases.active_draw(4608, 0.25, 7)
    assert a.shape == (24, 36) and np.array_equal(a, gemm_cases.active_draw(4608, 0.25, 7))
    assert 0.15 < a.mean() < 0.35
