"""FlashOmni Python tests: the examples in examples/ run on the CPU backend (quickstart.py's
checks pass, and fail when an operation is broken; flux_diffusers.py samples a tiny FLUX model
through both arms). Skipped without torch (and diffusers for the FLUX example)."""

import importlib.util
import os

import pytest

torch = pytest.importorskip("torch")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_checks_pass_on_the_cpu(capsys):
    assert load("quickstart").main(["--device", "cpu", "--tokens", "300", "--heads", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("  ok ") == 4 and "all checks passed" in out


def test_quickstart_fails_when_dispatch_ignores_the_cache(monkeypatch, capsys):
    example = load("quickstart")
    fo = example.fo
    real = fo.gemm_o_dispatch
    monkeypatch.setattr(fo, "gemm_o_dispatch",
                        lambda a, w, cache, **kw: real(a, w, torch.zeros_like(cache), **kw))
    assert example.main(["--device", "cpu", "--tokens", "300", "--heads", "2"]) == 1
    assert "FAIL gemm_o_dispatch" in capsys.readouterr().out


def test_flux_diffusers_example_samples_both_arms(capsys):
    pytest.importorskip("diffusers")
    assert load("flux_diffusers").main(["--steps", "6"]) == 0
    out = capsys.readouterr().out
    assert "0: update" in out and "dispatch (" in out and "PSNR" in out
