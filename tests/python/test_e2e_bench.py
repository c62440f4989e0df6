"""FlashOmni Python tests: the end-to-end benchmark script (bench/e2e_bench.py) on the CPU oracle at
tiny shapes — the Wan2.1-shaped model (--models wan) through both arms with the engine's
output-change query score, the saved step-kind times and layer-step counts, and the printed
time split. Exercises the code path only (CPU, tiny): measures nothing. Skipped without torch or
diffusers."""

import json
import os
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import e2e_bench  # noqa: E402


@pytest.fixture(scope="module")
def wan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    e2e_bench.main(["--smoke-cpu", "--models", "wan", "--steps", "8", "--warmup", "2",
                    "--interval", "2", "--tau-q", "2", "--out", str(out)])
    with open(out / "e2e_h100_smoke.json") as f:
        return json.load(f)


def test_wan_runs_both_arms_with_the_output_change_score(wan_run):
    r = wan_run["models"]["wan"]
    assert wan_run["kind"].startswith("SMOKE")
    assert r["engine"]["query_score"] == "output_change"  # Wan's default: no text tokens
    assert r["model"]["text_tokens"] == 0 and r["model"]["full_blocks"] == [30, 0]
    f = r["flashomni"]
    # 2 blocks x 8 steps: updates 0, 1, 3, 5, 7 (warm-up 2, interval 2), dispatches 2, 4, 6.
    kinds = f["layer_steps_by_kind"]
    assert kinds.get("update") == 10 and kinds.get("dispatch", 0) + kinds.get("reuse", 0) == 6
    # The output-change score caches query blocks without text (text-image could not).
    assert min(p["query_density"] for p in f["per_step"] if p["dispatch"]) < 1.0
    for arm in (r["dense"], f):
        by_kind = arm["by_step_kind"]
        assert by_kind["update"]["steps"] == 5 and by_kind["dispatch"]["steps"] == 3
        total = by_kind["update"]["total_ms"] + by_kind["dispatch"]["total_ms"]
        assert total == pytest.approx(arm["total_ms"])
    assert r["deviation"]["psnr_db"] > 40  # sparse, yet close to dense on this tiny model
    assert "scaled_to_full_depth" in r  # 2 of 30 blocks: totals scaled and labelled


def test_summary_prints_the_split_per_step_and_the_layer_step_counts(wan_run, capsys):
    r = json.loads(json.dumps(wan_run["models"]["wan"]))
    ms = dict(attention=80.0, gemm=40.0, policy=4.0, forecast=8.0, rest=28.0)  # 8 GPU steps
    r["flashomni"]["split"] = dict(ms=ms, per_step_ms={c: v / 8 for c, v in ms.items()})
    e2e_bench.print_summary("wan", r)
    text = capsys.readouterr().out
    assert "2 of 30 blocks" in text and "query score output_change" in text
    assert ("flashomni GPU kernel ms: attention 80.0  gemm 40.0  policy 4.0  forecast 8.0  rest "
            "28.0; per step: attention 10.00  gemm 5.00  policy 0.50  forecast 1.00  rest 3.50"
            ) in text
    kinds = r["flashomni"]["layer_steps_by_kind"]
    counts = " / ".join(str(kinds.get(k, 0)) for k in ("update", "dispatch", "reuse", "dense"))
    assert f"layer-steps update / dispatch / reuse / dense (fallback): {counts}" in text
    assert "mean ms per schedule step: update" in text


def test_kernel_categories_keep_the_forecast_apart_from_the_policy():
    c = e2e_bench.classify
    assert c("flashomni::cuda::(anonymous namespace)::forecast_kernel(ForecastKernelParams)") == \
        "forecast"
    assert c("void flashomni::cuda::policy::(anonymous namespace)::pool_kernel<__nv_bfloat16, 8>"
             "(PoolSide, int)") == "policy"
    assert c("void flashomni::cuda::gemm::sparse_gemm_kernel<__nv_bfloat16>(...)") == "gemm"
    assert c("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16") == "attention"
    assert c("void at::native::vectorized_elementwise_kernel<4>") == "rest"


def test_policy_sweep_runs_one_model_with_a_reuse_all_reference(tmp_path, capsys):
    # FLUX at the smoke shapes: one tau setting and the reuse-everything reference.
    e2e_bench.main(["--smoke-cpu", "--models", "flux", "--steps", "6", "--warmup", "2",
                    "--interval", "2", "--policy-sweep", "2,1;reuse_all", "--out", str(tmp_path)])
    with open(tmp_path / "e2e_sweep_h100_smoke.json") as f:
        r = json.load(f)["policy_sweep"]
    assert r["model_name"] == "flux"
    assert [s["setting"] for s in r["settings"]] == ["tau_q=2.0 tau_kv=1.0", "reuse_all"]
    assert set(r["settings"][1]["by_step_kind"]) == {"update", "dispatch"}
    reuse_all = r["settings"][1]["layer_steps_by_kind"]
    # Steps 0, 1 (warm-up), 3 and 5 (the last) update; 2 and 4 reuse in every layer.
    assert reuse_all.get("dispatch", 0) == 0 and reuse_all["reuse"] > 0
    assert "reuse_all" in capsys.readouterr().out


def test_policy_sweep_rejects_bad_settings_and_several_models(tmp_path):
    with pytest.raises(SystemExit):
        e2e_bench.main(["--smoke-cpu", "--models", "flux", "--policy-sweep", "1,2,3",
                        "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        e2e_bench.main(["--smoke-cpu", "--models", "flux,wan", "--policy-sweep", "1,2",
                        "--out", str(tmp_path)])
