"""The engine's default policy entry point and its lazy import of flashomni.policy
(flashomni.engine re-exports flashomni_policy)."""

import dataclasses
import importlib
import sys


def flashomni_policy(q, k, *, step, num_steps, text, block_q, block_kv, config, query_score=None,
                     out_now=None, out_prev=None):
    """The default policy: flashomni.policy.run_policy (the GPU policy kernels and the CPU
    oracle behind one Python entry point). The one seam to adjust if that signature moves.
    query_score / out_now / out_prev: passed through (the engine gives them only with
    EngineConfig.query_score "output_change", so a policy_fn without them keeps working)."""
    try:
        module = policy_module()
    except NotImplementedError as e:
        raise NotImplementedError(
            "flashomni.policy.run_policy is not available in this build; pass "
            "FlashOmniEngine(policy_fn=...)") from e
    fields = dataclasses.asdict(config)
    return module.run_policy(q, k, step=step, num_steps=num_steps,
                             text=None if text is None else [tuple(text)], block_q=block_q,
                             block_kv=block_kv, query_score=query_score, out_now=out_now,
                             out_prev=out_prev, **fields)


def policy_module():
    """flashomni.policy (run_policy, forecast), imported on first use: the engine module itself
    stays importable when the library lacks those entry points."""
    module = sys.modules.get(f"{__package__}.policy")  # every forecast asks: skip importlib
    if module is not None:
        return module
    try:
        return importlib.import_module(".policy", __package__)
    except ImportError as e:
        raise NotImplementedError(
            "flashomni.policy is not available in this build (the engine's forecast and default "
            "policy need it)") from e
