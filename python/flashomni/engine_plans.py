"""FlashOmni Python layer: one layer's GEMM plans for its dispatch steps (plan once, run many)."""

import torch

# A plan keeps its workspace; one with the K split's (SMs x 128 KB = 17 MB on the H100, for
# K >= 5120: FLUX's fused proj_out) is run once and not kept: 38 such layers would hold 0.6 GB.
MAX_KEPT_BYTES = 1 << 20


class LayerPlans:
    """The GemmPlans of a layer's dispatch-step GEMMs (gemm_q, gemm_o_dispatch): made at the
    first dispatch step after an update and run by the following ones, whose symbols are the
    same until the next update. clear() at every update (the policy may rewrite the words in
    place). None while the stream is being captured: a captured graph would keep reading a list
    that the next update frees (captured dispatch steps plan inside the graph, as without plans)."""

    def __init__(self):
        self._plans = {}

    def clear(self):
        self._plans.clear()

    def get(self, key, like, make):
        """The plan for `key` (a tuple of what the list depends on: op, symbols, shapes), made by
        make() if there is none yet; None for host tensors and during capture."""
        if not like.is_cuda or torch.cuda.is_current_stream_capturing():
            return None
        plan = self._plans.get(key)
        if plan is None:
            plan = make()
            self._plans[key] = plan if plan._bytes <= MAX_KEPT_BYTES else False
        return plan or None
