"""FlashOmni Python tests: bench/e2e_idle_probe.py's trace accounting on a synthetic Chrome trace
(GPU gaps, launch lag, the engine stage and sync-like call overlapping a gap, host time per
stage). The probe itself needs a GPU; this checks its arithmetic. Skipped without torch."""

import json
import os
import sys

import pytest

pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import e2e_idle_probe as probe  # noqa: E402


def event(cat, name, ts, dur, corr=None):
    e = dict(ph="X", cat=cat, name=name, ts=ts, dur=dur)
    if corr is not None:
        e["args"] = {"correlation": corr}
    return e


def test_gaps_are_attributed_to_the_stage_and_call_the_host_was_in(tmp_path):
    ev = [
        event("user_annotation", "step 9", 0, 400),
        event("cuda_runtime", "cudaLaunchKernel", 0, 5, 1), event("kernel", "k1", 10, 100, 1),
        # A stage with a nested one, and a host wait inside it: the GPU idles 110-268.
        event("user_annotation", "fo::LayerEngine.project_o", 100, 200),
        event("user_annotation", "fo::LayerEngine._forecast", 120, 50),
        event("cuda_runtime", "cudaStreamSynchronize", 105, 150),
        event("cpu_op", "aten::add", 120, 20),
        event("cuda_runtime", "cudaLaunchKernel", 260, 5, 2), event("kernel", "k2", 268, 50, 2),
        # A gap below the threshold (318-322) and overlapping kernels (no gap).
        event("cuda_runtime", "cudaLaunchKernel", 300, 5, 3), event("kernel", "k3", 322, 40, 3),
        event("kernel", "k4", 330, 40, 4),
    ]
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": ev}))
    r = probe.analyse(str(path), gap_us=10, top=5)
    assert r["gaps"] == 1 and r["gaps_starved"] == 1
    assert r["window_wall_ms"] == pytest.approx(0.360)
    assert r["gpu_busy_ms"] == pytest.approx((100 + 50 + 48) / 1e3)
    g = r["longest_gaps"][0]
    assert (g["gap_us"], g["after"], g["before"], g["launch_lag_us"]) == (158, "k1", "k2", 3)
    assert g["engine_stage"] == "fo::LayerEngine._forecast"  # the innermost stage
    assert g["longest_runtime_call"] == "cudaStreamSynchronize 150 us"
    assert g["longest_cpu_op"] == "aten::add"
    assert r["gap_ms_by_sync_like_call"] == {"cudaStreamSynchronize": 0.158}
    stages = r["host_ms_by_engine_stage"]
    assert stages["fo::LayerEngine.project_o"]["ms"] == pytest.approx(0.150)  # 200 - 50 nested
    assert stages["fo::LayerEngine._forecast"]["ms"] == pytest.approx(0.050)
    assert r["host_ms_steps"] == pytest.approx(0.400)
    assert r["host_ms_outside_engine_stages"] == pytest.approx(0.200)
