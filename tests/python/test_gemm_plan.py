"""FlashOmni Python tests: GEMM plans on the CPU backend, which has no work list. A plan records
its operation only: runs given it compute the whole operation (equal to runs without), and the C
API refuses a plan of another operation, a struct no *_plan call filled and a NULL plan
pointer, naming 'plan'."""

import ctypes

import numpy as np
import pytest

import flashomni as fo
from flashomni import _lib
from test_gemm import _symbols


def _q_args(rng):
    heads, head_dim, kdim, rows = 3, 8, 24, 40
    _, s = _symbols(rng, 1, heads, rows)
    x = rng.standard_normal((rows, kdim))
    w = rng.standard_normal((heads * head_dim, kdim))
    return x, w, s, heads


def test_gemm_q_with_a_cpu_plan_equals_without():
    rng = np.random.default_rng(0)
    x, w, s, heads = _q_args(rng)
    want = fo.gemm_q(x, w, heads=heads, symbols=s, out=np.full((40, 24), 2.0))
    plan = fo.gemm_q_plan(x, w, heads=heads, symbols=s)
    assert isinstance(plan, fo.GemmPlan) and plan.op == "gemm_q"
    for _ in range(2):
        got = fo.gemm_q(x, w, heads=heads, symbols=s, out=np.full((40, 24), 2.0), plan=plan)
        np.testing.assert_array_equal(got, want)


def test_gemm_o_with_cpu_plans_equals_without():
    rng = np.random.default_rng(1)
    heads, head_dim, rows, n = 3, 8, 40, 10
    _, s = _symbols(rng, 1, heads, rows)
    a = rng.standard_normal((rows, heads * head_dim))
    w = rng.standard_normal((n, heads * head_dim))
    b = rng.standard_normal(n)
    y_want, c_want = fo.gemm_o_update(a, w, b, heads=heads, symbols=s)
    up = fo.gemm_o_update_plan(a, w, b, heads=heads, symbols=s)
    y, c = fo.gemm_o_update(a, w, b, heads=heads, symbols=s, plan=up)
    np.testing.assert_array_equal(y, y_want)
    np.testing.assert_array_equal(c, c_want)
    dp = fo.gemm_o_dispatch_plan(a, w, c, heads=heads, symbols=s)
    np.testing.assert_array_equal(fo.gemm_o_dispatch(a, w, c, heads=heads, symbols=s, plan=dp),
                                  y_want)
    with pytest.raises(ValueError, match="argument 'plan'.*gemm_o_update"):
        fo.gemm_o_dispatch(a, w, c, heads=heads, symbols=s, plan=up)
    with pytest.raises(TypeError, match="plan"):
        fo.gemm_o_dispatch(a, w, c, heads=heads, symbols=s, plan="not a plan")


def test_the_c_api_checks_the_plan_it_is_given():
    rng = np.random.default_rng(2)
    x, w, s, heads = _q_args(rng)
    plan = fo.gemm_q_plan(x, w, heads=heads, symbols=s)
    # Relabel it on the Python side only: the C API must see the operation it was made for.
    plan.op = "gemm_o_dispatch"
    a = rng.standard_normal((40, 24))
    wo = rng.standard_normal((10, 24))
    c = np.zeros((40, 10))
    with pytest.raises(ValueError, match="plan.*another operation"):
        fo.gemm_o_dispatch(a, wo, c, heads=heads, symbols=s, plan=plan)
    plan.op = "gemm_q"
    plan._c = _lib.GemmPlanStruct()  # zeroed: no *_plan call filled it
    with pytest.raises(ValueError, match="plan.*not filled"):
        fo.gemm_q(x, w, heads=heads, symbols=s, plan=plan)
    args = _lib.GemmQArgs()
    args.struct_size = ctypes.sizeof(_lib.GemmQArgs)
    with pytest.raises(ValueError, match="plan.*NULL"):
        _lib.call("flashomni_gemm_q_plan", ctypes.byref(args), None, 0, None, None)
