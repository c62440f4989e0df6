"""FlashOmni Python layer: the Update–Dispatch engine for PyTorch models (spec §5).

Mirrors the C++ engine (engine.h: Schedule, the Taylor forecast, LayerEngine, whole-layer reuse)
on torch tensors, with FlashOmni's sparse GEMM-Q / attention / GEMM-O in the dispatch steps:

- update step (the first W steps, every N-th after, the last): dense Q projection and attention;
  then the policy chooses new symbols from this step's Q and K (EngineConfig.query_score
  "text_image") or from this step's and the previous update's attention outputs
  ("output_change"); gemm_o_update writes the output and the
  cache C = bias + cached heads' contribution in one pass;
- dispatch step: gemm_q / sparse_attention / gemm_o_dispatch on active (block, head) tiles only;
  the cached heads' contribution is the Taylor forecast of C (flashomni.forecast, one fused
  pass); a layer whose query density is above `dense_q_above` runs the Q projection with cuBLAS
  over all rows instead (cheaper there; the attention ignores cached rows);
- reuse step (a dispatch step of a layer whose query density fell below `reuse_below` at the last
  update): no Q/K/V projection and no attention; the output is the forecast alone;
- with `dense_fallback`, a dispatch step of a layer whose sparse step would cost more than dense
  (dispatch_cost_ratio, on the last update's symbols) runs densely: cuBLAS + SDPA, the exact
  output. The Python engine's only (the C++ LayerEngine has no cost model).

The forecast lives in C, not in the attention output: the projection is linear and the Lagrange
weights sum to 1, so b + sum_cached (sum_p w_p A_p) W^T = sum_p w_p C_p with C_p = b +
sum_cached A_p W^T computed under the *current* symbols. The symbols change at every update, so
C_p of an older point p is recomputed at the update from that point's attention output A_p
(kept only when taylor_order > 0: `taylor_order` tensors of [M, heads * head_dim] per
projection) by a cache-only gemm_o_update (cached heads only, no output). Forecast rows are
identical to the C++ engine's up to summation order.

No host synchronisation inside a dispatch or reuse step: the step kind, forecast weights, reuse
and dense-Q decisions are host values fixed at the last update. Nor inside an update step with
GPU symbols: reuse is decided on the GPU there, and the chosen symbols' density is copied to
pinned memory and read with the dense fallback's verdict at the layer's next begin(), a step
later, when the copy has long finished: the event wait there does not block, and the host reads
one layer at a time between its kernel launches instead of all layers while the GPU queue runs
dry (flashomni.pending_density; host or varlen symbols are read at once). A
dispatch step therefore only launches kernels and can be recorded in a CUDA graph
(tests/gpu/test_engine_graph.py); such a graph holds that step's forecast weights and the
current symbols' pointers, so it serves one dispatch step index until the next update.

Example (the processors in flashomni.diffusers call the LayerEngine methods):
    engine = FlashOmniEngine(EngineConfig(schedule=ScheduleConfig(num_steps=50)))
    apply_flux(model, engine)                # flashomni.diffusers
    for s in range(50):
        engine.set_step(s)
        v = model(latents, ...).sample       # every layer runs update / dispatch / reuse
"""

import dataclasses
import math
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from . import ops
from .schedule import Schedule, ScheduleConfig, StepKind, step_kind_name, taylor_weights  # noqa: F401
from .cost_model import dispatch_cost_ratio
from .engine_symbols import all_cached_like as _all_cached_like
from .engine_symbols import heads_union as _heads_union
from .engine_plans import LayerPlans
from .engine_policy import flashomni_policy, policy_module as _policy_module  # noqa: F401
from .pending_density import PendingDensity
from .symbols import DEFAULT_BLOCK, Symbols


@dataclasses.dataclass
class PolicyConfig:
    """Same fields and defaults as the C++ PolicyConfig (policy.h); num_steps comes from the
    schedule."""

    tau_q: float = 0.5
    tau_kv: float = 0.15
    kv_top_k: int = 0
    cache_queries: bool = True
    skip_kv: bool = True
    keep_diagonal: bool = False
    keep_text_kv: bool = False
    skip_kv_for_text: bool = False
    weight_by_tokens: bool = True
    softmax_scale: float = 0.0


# Per-layer (tau_q, tau_kv); either may be None to keep EngineConfig.policy's value.
Thresholds = Tuple[Optional[float], Optional[float]]

# policy_fn(q, k, *, step, num_steps, text, block_q, block_kv, config) -> Symbols, with q
# [B, N, H, d] and k [B, N, Hkv, d] on one device, text a (begin, end) token range (or None),
# config a PolicyConfig; the Symbols must live on q's device. With EngineConfig.query_score
# "output_change" it also gets query_score="output_change", out_now (this update's attention
# output [B, N, H, dv]) and out_prev (the previous update's, None at the layer's first update).
PolicyFn = Callable[..., Symbols]


@dataclasses.dataclass
class EngineConfig:
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    taylor_order: int = 2  # 0..2; > 0 keeps that many older attention outputs per projection
    # Query density (of the symbols chosen at the last update) below which the following
    # dispatch steps reuse the whole layer.
    reuse_below: float = 0.3
    block_q: int = DEFAULT_BLOCK
    block_kv: int = DEFAULT_BLOCK
    # Dense work at update steps: "torch" (cuBLAS linear + SDPA; the best dense kernels) or
    # "flashomni" (gemm_q / sparse_attention without symbols). gemm_o_update runs either way.
    update_backend: str = "torch"
    cache_dtype: torch.dtype = torch.float32  # dtype of C (fp32: exact up to summation order)
    # dtype of the Taylor forecast of C that a dispatch step reads (None: the projection's storage
    # dtype). The points keep cache_dtype, so the weighted sum is formed at full precision and
    # rounded once; a 16-bit forecast halves its write and lets gemm_o_dispatch stage C by TMA
    # during the mainloop instead of loading fp32 C before it (bench/results/e2e_README.md).
    forecast_dtype: Optional[torch.dtype] = None
    # Query density (of the symbols chosen at the last update) above which the following dispatch
    # steps run the Q projection densely with torch (cuBLAS) instead of gemm_q. Measured on H100
    # (bench/results/e2e_README.md, FLUX shapes): gemm_q runs at 0.76-0.93x cuBLAS speed in dense
    # mode, so sparse Q work at density d costs about d / 0.85 of cuBLAS dense and only wins
    # below ~0.75. Safe for the output: the attention never reads the Q rows of cached (block,
    # head) tiles, so computing them changes nothing. 1.0 turns it off (always gemm_q).
    dense_q_above: float = 0.75
    # Dense fallback: a layer whose coming dispatch steps would cost more than its dense step
    # (dispatch_cost_ratio(): shapes, the chosen symbols' densities, H100 kernel efficiencies)
    # runs them densely (cuBLAS + SDPA, the exact output); its next update computes no cache.
    # Off by default (an H100 model); bench/e2e_bench.py --dense-fallback measures it.
    dense_fallback: bool = False
    # Per-layer thresholds (issue 5): overrides of policy.tau_q / tau_kv for some layers, as a
    # dict {layer: (tau_q, tau_kv)} or a callable layer_index -> (tau_q, tau_kv) or None. A layer
    # is its index (the order FlashOmniEngine.layer() first met it: apply_flux numbers the
    # double-stream blocks 0..18, then the single-stream ones 19..56; apply_wan blocks.i is i)
    # or, in a dict, its name ("single_transformer_blocks.3"; a name entry wins over an index
    # entry). None in a pair keeps that global value; a layer not covered keeps both. E.g.
    # {0: (0.0, 0.0)} keeps the first layer dense (phi(s) * 0 caches and skips nothing), or
    # lambda i: (0.3, 0.1) if i < 10 else None makes the first ten layers more conservative.
    layer_thresholds: Optional[Union[Dict[Union[int, str], Thresholds],
                                     Callable[[int], Optional[Thresholds]]]] = None
    # What ranks query blocks for caching (docs/policy.md), for every layer: "text_image" (the
    # text<->image pooled attention; caches nothing in a sequence without text, e.g. Wan
    # self-attention) or "output_change" (||O_now - O_prev|| / ||O_prev|| per block between this
    # and the previous update's attention outputs; needs no text). "output_change" keeps each
    # layer's attention output of its last update step (a reference to the tensor attention()
    # returned there, so callers must not modify it in place) until the next update: one output
    # per layer, B * N * H * dv elements of q's dtype, e.g. FLUX at 1024^2 (4608 tokens, 24
    # heads of 128, bf16) 28 MB per layer, 1.6 GB over its 57 layers. The layer's first update
    # has no previous output: its policy caches no query block (key blocks are still skipped).
    query_score: str = "text_image"
    # Dispatch steps run gemm_q and gemm_o_dispatch on plans made at the layer's first dispatch
    # step after an update (flashomni.gemm_q_plan...: the symbols stay the same until the next
    # update), so the planner (one CTA, ~6 us on the H100, serial with its GEMM) runs once per
    # interval instead of per call. Not while a CUDA graph is captured (engine_plans.py).
    gemm_plans: bool = True


def _check_thresholds(pair, where):
    """(tau_q, tau_kv) with each None or a finite float >= 0 (the C policy's range)."""
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ValueError(f"argument '{where}': expected a pair (tau_q, tau_kv), got {pair!r}")
    for name, v in zip(("tau_q", "tau_kv"), pair):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v) or v < 0):
            raise ValueError(f"argument '{where}': expected {name} None or a finite number >= "
                             f"0, got {v!r}")
    return tuple(pair)


@dataclasses.dataclass
class StepReport:
    step: int
    kind: StepKind
    # Work done: 1 at an update, the symbols' densities at a dispatch, 0 at a reuse.
    query_density: float = 1.0
    kv_density: float = 1.0
    pair_density: float = 1.0  # attention FLOP fraction vs dense
    forecast_points: int = 0  # points behind the forecast (0 at an update)
    dense_q: bool = False  # a dispatch step whose Q projection ran densely (dense_q_above)
    dense: bool = False  # a dispatch step run densely throughout (dense_fallback)
    policy_ran: bool = False


class _Projection:
    """One output projection's cache: points C_p under the current symbols, and the attention
    outputs of the last update steps that later symbols need C recomputed from."""

    def __init__(self):
        self.history: List[Tuple[int, torch.Tensor]] = []  # (step, A [.., heads*head_dim])
        self.points: List[torch.Tensor] = []  # C_p at the layer's forecast steps, oldest first


class LayerEngine:
    """One attention layer's Update–Dispatch state (the C++ LayerEngine's Python twin). The
    processors call begin() once per step, then project_q / attention / project_o."""

    def __init__(self, engine, name, index=0):
        self.engine = engine
        self.name = name
        self.index = index  # creation order in the engine (EngineConfig.layer_thresholds)
        self.reports: List[StepReport] = []
        self._pinned = None  # PinnedWords of the deferred density reads, kept across resets
        self.reset()

    def reset(self):
        self.symbols: Optional[Symbols] = None  # chosen at the last update that ran the policy
        self.density: Optional[dict] = None  # their Symbols.density() summary
        self.reuse = False
        self.dense_q = False  # dispatch steps run Q densely (decided at the last update)
        self.dense = False  # dispatch steps run the whole layer densely (dense_fallback)
        self._dense_verdict = False  # the cost model's answer at the last density read
        self._caches = True  # this update computes caches for the coming dispatch steps
        self.kind: Optional[StepKind] = None
        self.step = -1
        self._update_steps: List[int] = []  # the last taylor_order + 1 update steps
        self._fc_steps: List[int] = []  # points behind the forecast of the coming dispatches
        self._policy_ran = False
        self._gemm_symbols: Optional[Symbols] = None  # what gemm_o uses at this step
        self._all_cached: Optional[Symbols] = None  # every query block cached (reuse steps)
        self._full_rows = False  # the caller mixes a token's heads after the Q projection
        self._row_symbols: Optional[Symbols] = None  # q bits OR-ed over heads (full_rows)
        self._projections: Dict[str, _Projection] = {}
        self._plans = LayerPlans()  # dispatch steps' GEMM plans, dropped at each update
        self._prev_out: Optional[torch.Tensor] = None  # last update's attention (output_change)
        self._pending: Optional[PendingDensity] = None  # density read deferred to begin()
        self._shape = (0, 0, 0)  # tokens, heads, head_dim of the last policy run
        self.reports = []

    @property
    def config(self):
        return self.engine.config

    @property
    def policy(self):
        """The PolicyConfig this layer's updates use: config.policy with the layer's
        layer_thresholds applied."""
        return self.engine._layer_policy(self.index, self.name)

    # ---- step control -------------------------------------------------------------------
    def begin(self):
        """Starts this layer's work for the engine's current step; returns the StepKind."""
        step = self.engine.step
        if step <= self.step:
            raise RuntimeError(
                f"layer {self.name!r}: step {step} after step {self.step}; call "
                f"engine.set_step() with increasing steps once per denoising step (a layer runs "
                f"once per step: batch classifier-free guidance into one forward), reset() to "
                f"start a new generation")
        if self._pending is not None and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                f"layer {self.name!r}: the last update's density is still to be read (a host "
                f"wait on its copy) and this stream is being captured in a CUDA graph; call "
                f"engine.resolve_density() before capturing the first step after an update")
        self.resolve_density()  # the last update's density (PendingDensity)
        kind = self.engine.schedule.step_kind(step)
        if kind == StepKind.DISPATCH and not self._fc_steps:
            kind = StepKind.UPDATE  # nothing recorded yet: e.g. a generation started mid-way
        if kind == StepKind.DISPATCH and self.reuse:
            kind = StepKind.REUSE
        self.step, self.kind = step, kind
        self._policy_ran = False
        report = StepReport(step=step, kind=kind)
        if kind == StepKind.UPDATE:
            self._gemm_symbols = None
            self._plans.clear()
            self._fc_steps = []
            self._update_steps = (self._update_steps + [step])[-(self.config.taylor_order + 1):]
        else:
            self._gemm_symbols = self.symbols if kind == StepKind.DISPATCH else self._all_cached
            report.forecast_points = len(self._fc_steps)
            if kind == StepKind.DISPATCH:
                d = self.density
                report.query_density = d["query"]["overall"]
                report.kv_density = d["kv"]["overall"]
                report.pair_density = d["token_pair"]["overall"]
                report.dense_q = self.dense_q
                report.dense = self.dense
            else:
                report.query_density = report.kv_density = report.pair_density = 0.0
        self.reports.append(report)
        return kind

    def _next_is_dispatch(self):
        nxt = self.step + 1
        sched = self.engine.schedule
        return nxt < sched.config.num_steps and sched.step_kind(nxt) == StepKind.DISPATCH

    def _require(self, *kinds):
        if self.kind not in kinds:
            names = "/".join(step_kind_name(k) for k in kinds)
            now = "not started" if self.kind is None else step_kind_name(self.kind)
            raise RuntimeError(f"layer {self.name!r}: expected a {names} step, this one is "
                               f"{now} (call begin() first)")

    # ---- the three stages ---------------------------------------------------------------
    def project_q(self, x, linear, *, heads, row_offset=0, full_rows=False):
        """Q = x W^T + b: dense at an update, active (block, head) tiles only at a dispatch
        (rows of cached tiles are 0), or every row with cuBLAS at a dispatch whose query density
        is above dense_q_above (the attention reads active tiles' rows only: same output). Row m
        of x is token m + row_offset of the attention.

        full_rows: the caller mixes a token's heads after this projection (Wan's RMS norm of Q
        over all heads), so a token's active head needs the token's other heads too. A dispatch
        step then computes every head of each query block that is active in any head (the
        union over heads; blocks cached in every head stay 0), and dense_q compares the union's
        density with dense_q_above. Pass it at every step of the layer (the update step decides
        the union with the symbols)."""
        self._require(StepKind.UPDATE, StepKind.DISPATCH)
        self._full_rows = self._full_rows or full_rows
        dense_torch = (self.dense_q or self.dense if self.kind == StepKind.DISPATCH else
                       self.config.update_backend == "torch")
        if dense_torch:
            return F.linear(x, linear.weight, linear.bias)
        symbols = self._gemm_symbols
        if full_rows and self.kind == StepKind.DISPATCH:
            symbols = self._row_symbols  # None (dense) if full_rows was not passed at the update
        plan = None
        if self.kind == StepKind.DISPATCH and symbols is not None and self.config.gemm_plans:
            key = ("q", id(symbols), tuple(x.shape), x.dtype, tuple(linear.weight.shape),
                   row_offset)
            plan = self._plans.get(key, x, lambda: ops.gemm_q_plan(
                x, linear.weight, linear.bias, heads=heads, symbols=symbols,
                row_offset=row_offset))
        return ops.gemm_q(x, linear.weight, linear.bias, heads=heads, symbols=symbols,
                          row_offset=row_offset, plan=plan)

    def attention(self, q, k, v, *, text=None, softmax_scale=None):
        """q [B, N, H, d], k / v [B, N, Hkv, d] -> [B, N, H, d]. Update: dense, then the policy
        chooses the symbols of the next steps (when the next step is a dispatch) from q and k,
        and with query_score "output_change" from this dense output and the one the previous
        update kept (the C++ LayerEngine's order: attention, policy, keep the output; kept at
        every update, also where the policy does not run). Dispatch: sparse; rows of cached
        (block, head) are left 0. text: (begin, end) token range of the text in the joint
        sequence, for the policy."""
        self._require(StepKind.UPDATE, StepKind.DISPATCH)
        dispatch = self.kind == StepKind.DISPATCH
        if dispatch and not self.dense:
            return ops.sparse_attention(q, k, v, self.symbols, softmax_scale=softmax_scale)
        if self.config.update_backend == "torch" or dispatch:
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=softmax_scale,
                enable_gqa=k.shape[2] != q.shape[2]).transpose(1, 2)
        else:
            out = ops.sparse_attention(q, k, v, None, softmax_scale=softmax_scale)
        if dispatch:
            return out  # dense fallback: no policy, nothing kept
        by_change = self.config.query_score == "output_change"
        if self._next_is_dispatch():
            self._choose_symbols(q, k, text, softmax_scale, out if by_change else None)
        # A reference, no copy: `out` is a fresh tensor of this call (strided views are fine
        # for the policy) that nothing in the engine writes again.
        self._prev_out = out if by_change else None
        return out

    def _choose_symbols(self, q, k, text, softmax_scale, out_now):
        cfg = self.config
        policy = self.policy
        if softmax_scale and not policy.softmax_scale:
            policy = dataclasses.replace(policy, softmax_scale=float(softmax_scale))
        extra = {}
        if out_now is not None:
            extra = dict(query_score="output_change", out_now=out_now, out_prev=self._prev_out)
        symbols = self.engine.policy_fn(q, k, step=self.step,
                                        num_steps=cfg.schedule.num_steps, text=text,
                                        block_q=cfg.block_q, block_kv=cfg.block_kv, config=policy,
                                        **extra)
        if not isinstance(symbols, Symbols):
            raise TypeError(f"policy_fn: expected flashomni.Symbols, got {type(symbols).__name__}")
        self.symbols = symbols
        self._shape = tuple(q.shape[1:4])
        self._all_cached = _all_cached_like(symbols)
        if PendingDensity.applies(symbols):
            # No host read here (pending_density.py): reuse is decided on the GPU, the rest and
            # the dense fallback's verdict come at the next begin(), so caches are kept unless
            # the last verdict was dense (a layer turning sparse runs one more interval dense).
            self._pending = PendingDensity(symbols, cfg.reuse_below, self._pinned)
            self._pinned = self._pending.buffers
            self._gemm_symbols = self._pending.gemm_symbols(self._all_cached)
            self._caches = not self._dense_verdict
        else:
            self._pending = None  # host words or varlen symbols: read now
            self._caches = True
            self._set_density(symbols.density(), None, symbols)
            self._caches = not self.dense
            self._gemm_symbols = self._all_cached if self.reuse else symbols
        self._fc_steps = list(self._update_steps)
        self._policy_ran = True
        self.reports[-1].policy_ran = True

    def resolve_density(self):
        """Reads the last update's pending density, if any. begin() calls it: reading every
        layer at set_step waited for the last layer's copy and then left the GPU idle ~10 ms
        per FLUX step while the host read 57 layers (bench/results/idle_probe_h100_dfed8a6);
        reading only finished copies there still read them all whenever the host was the
        slower side (idle_probe_h100_16f0762)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._set_density(*pending.read())

    def _set_density(self, density, reuse, host_symbols):
        """The choices that follow from the density (reuse: the GPU's decision, or None)."""
        cfg = self.config
        overall = density["query"]["overall"]
        self.density = density
        self.reuse = overall < cfg.reuse_below if reuse is None else reuse
        self.dense_q = overall > cfg.dense_q_above
        self._row_symbols = None
        if self._full_rows:
            self._row_symbols = _heads_union(self.symbols)
            self.dense_q = (_heads_union(host_symbols).density()["query"]["overall"]
                            > cfg.dense_q_above)
        tokens, heads, head_dim = self._shape
        self._dense_verdict = cfg.dense_fallback and not self.reuse and dispatch_cost_ratio(
            tokens=tokens, heads=heads, head_dim=head_dim, query_density=overall,
            pair_density=density["token_pair"]["overall"],
            forecast_points=len(self._update_steps), dense_q=self.dense_q,
            cache_bytes=4 if cfg.cache_dtype == torch.float32 else 2) >= 1.0
        # Without the update's caches neither reuse nor a sparse dispatch can run.
        self.dense = self._dense_verdict or not self._caches
        self.reuse = self.reuse and self._caches

    def project_o(self, stream, a, linear, *, heads, head_dim, row_offset=0):
        """Y = A W^T + b through the cache C (spec §4); `stream` names the projection ("out",
        "img", "txt"). a [B, M, heads*head_dim + extra] (extra columns, e.g. FLUX single-stream
        MLP, always active); at a reuse step `a` may be None when extra == 0."""
        self._require(StepKind.UPDATE, StepKind.DISPATCH, StepKind.REUSE)
        proj = self._projections.get(stream) or self._projections.setdefault(stream,
                                                                             _Projection())
        if self.kind == StepKind.UPDATE:
            return self._project_update(stream, proj, a, linear, heads, head_dim, row_offset)
        if self.kind == StepKind.DISPATCH and self.dense:
            return F.linear(a, linear.weight, linear.bias)
        cache = self._forecast(proj, self.config.forecast_dtype or linear.weight.dtype)
        extra = linear.weight.shape[1] - heads * head_dim
        if self.kind == StepKind.REUSE and extra == 0:  # a copy: the forecast buffer is shared
            y = cache.to(linear.weight.dtype)
            return y.clone() if y is cache else y
        if a is None:
            raise ValueError(f"argument 'a': required at a {step_kind_name(self.kind)} step")
        symbols, plan = self._gemm_symbols, None
        if symbols is not None and self.config.gemm_plans:
            key = ("o", stream, id(symbols), tuple(a.shape), a.dtype, tuple(linear.weight.shape),
                   cache.dtype, row_offset)
            plan = self._plans.get(key, a, lambda: ops.gemm_o_dispatch_plan(
                a, linear.weight, cache, heads=heads, head_dim=head_dim, symbols=symbols,
                row_offset=row_offset))
        return ops.gemm_o_dispatch(a, linear.weight, cache, heads=heads, head_dim=head_dim,
                                   symbols=symbols, row_offset=row_offset, plan=plan)

    def _project_update(self, stream, proj, a, linear, heads, head_dim, row_offset):
        cfg = self.config
        cols = heads * head_dim
        w, b = linear.weight, linear.bias
        if not self._policy_ran or not self._caches:
            # The next step is an update too, or the dispatch steps run densely: no cache.
            y = (F.linear(a, w, b) if cfg.update_backend == "torch" else
                 ops.gemm_o_update(a, w, b, heads=heads, head_dim=head_dim, row_offset=row_offset,
                                   cache_dtype=cfg.cache_dtype)[0])
            proj.points = []
        else:
            y, cache = ops.gemm_o_update(a, w, b, heads=heads, head_dim=head_dim,
                                         symbols=self._gemm_symbols, row_offset=row_offset,
                                         cache_dtype=cfg.cache_dtype)
            # Older points' C under the new symbols, from their attention outputs.
            older = proj.history[len(proj.history) - (len(self._fc_steps) - 1):]
            if [s for s, _ in older] + [self.step] != self._fc_steps:
                raise RuntimeError(
                    f"layer {self.name!r}: projection {stream!r} has attention outputs of steps "
                    f"{[s for s, _ in older]}, the forecast needs {self._fc_steps[:-1]} (it must "
                    f"run at every update step)")
            # Cache-only updates: the cached heads' share alone, (1 - query density) of a
            # dense GEMM each, where a full update (all heads plus a thrown-away Y) cost ~1.3x.
            points = [ops.gemm_o_update(a_p, w[:, :cols], b, heads=heads, head_dim=head_dim,
                                        symbols=self._gemm_symbols, row_offset=row_offset,
                                        cache_dtype=cfg.cache_dtype, cache_only=True)[1]
                      for _, a_p in older]
            proj.points = points + [cache]
        if cfg.taylor_order:
            a_heads = a[..., :cols].clone(memory_format=torch.contiguous_format)
            proj.history.append((self.step, a_heads))
            del proj.history[:-cfg.taylor_order]
        return y

    def _forecast(self, proj, dtype):
        """sum_p w_p C_p at this step in one pass: flashomni.forecast (the fused kernel on CUDA,
        the CPU oracle on host tensors; Lagrange weights from the host step indices, summed in
        double, one rounding to `dtype`), written into a buffer the layers share per shape and dtype
        (each forecast is consumed by its projection at once, in stream order): one [M, N] array
        less per projection. Launch only: no allocation after the first dispatch, no sync. One
        point: C itself, no copy."""
        if not proj.points:
            raise RuntimeError(f"layer {self.name!r}: no cache recorded for this projection at "
                               f"the last update (was it called there?)")
        if len(proj.points) == 1:
            return proj.points[0]
        c0 = proj.points[0]
        key = (tuple(c0.shape), dtype, c0.device)
        out = self.engine.forecast_out.get(key)
        if out is None:
            out = self.engine.forecast_out[key] = torch.empty(c0.shape, dtype=dtype,
                                                              device=c0.device)
        return _policy_module().forecast(proj.points, self._fc_steps, self.step,
                                         order=len(proj.points) - 1, out=out)


class FlashOmniEngine:
    """The Update–Dispatch state of a whole model: the configuration, the step clock shared by
    its layers, the policy, and one LayerEngine per attention layer (created on first use)."""

    def __init__(self, config=None, policy_fn=None):
        self.config = config or EngineConfig()
        self.schedule = Schedule(self.config.schedule)
        c = self.config
        if c.taylor_order not in (0, 1, 2):
            raise ValueError(f"argument 'taylor_order': expected 0, 1 or 2, got {c.taylor_order}")
        for name in ("reuse_below", "dense_q_above"):
            v = getattr(c, name)
            if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0 or math.isnan(v):
                raise ValueError(f"argument '{name}': expected in [0, 1], got {v!r}")
        if c.query_score not in ("text_image", "output_change"):
            raise ValueError(f"argument 'query_score': expected 'text_image' or 'output_change', "
                             f"got {c.query_score!r}")
        if c.update_backend not in ("torch", "flashomni"):
            raise ValueError(f"argument 'update_backend': expected 'torch' or 'flashomni', got "
                             f"{c.update_backend!r}")
        for name in ("block_q", "block_kv"):
            v = getattr(c, name)
            if not (isinstance(v, int) and 16 <= v <= 1024 and v % 16 == 0):
                raise ValueError(f"argument '{name}': expected a positive multiple of 16 that is "
                                 f"at most 1024, got {v!r}")
        if c.cache_dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"argument 'cache_dtype': expected float32 or the storage dtype, got "
                             f"{c.cache_dtype}")
        if c.forecast_dtype not in (None, torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"argument 'forecast_dtype': expected None, float32 or the storage "
                             f"dtype, got {c.forecast_dtype}")
        lt = c.layer_thresholds
        if isinstance(lt, dict):
            for key, pair in lt.items():
                if isinstance(key, bool) or not isinstance(key, (int, str)):
                    raise ValueError(f"argument 'layer_thresholds': expected layer indices or "
                                     f"names as keys, got {key!r}")
                _check_thresholds(pair, f"layer_thresholds[{key!r}]")
        elif lt is not None and not callable(lt):
            raise ValueError(f"argument 'layer_thresholds': expected None, a dict or a callable, "
                             f"got {type(lt).__name__}")
        self.policy_fn = policy_fn or flashomni_policy
        self.layers: Dict[str, LayerEngine] = {}
        self.forecast_out: Dict[tuple, torch.Tensor] = {}  # the layers' shared forecast buffers
        self.step = 0

    def layer(self, name):
        if name not in self.layers:
            self.layers[name] = LayerEngine(self, name, index=len(self.layers))
        return self.layers[name]

    def _layer_policy(self, index, name):
        """config.policy with layer `index` / `name`'s layer_thresholds applied."""
        lt = self.config.layer_thresholds
        if lt is None:
            pair = None
        elif isinstance(lt, dict):
            pair = lt.get(name, lt.get(index))
        else:
            pair = lt(index)
            if pair is not None:
                pair = _check_thresholds(pair, f"layer_thresholds({index})")
        policy = self.config.policy
        if pair is None:
            return policy
        tau_q, tau_kv = pair
        return dataclasses.replace(policy,
                                   tau_q=policy.tau_q if tau_q is None else float(tau_q),
                                   tau_kv=policy.tau_kv if tau_kv is None else float(tau_kv))

    def set_step(self, step):
        """The denoising step (0-based) the next forward pass runs."""
        self.schedule.step_kind(step)  # validates the range
        self.step = int(step)

    def resolve_density(self):
        """Reads every layer's pending density now (waits for the copies): e.g. before
        capturing the first step after an update in a CUDA graph, whose begin() must not wait."""
        for layer in self.layers.values():
            layer.resolve_density()

    def pipeline_callback(self, pipe, step, timestep, callback_kwargs):
        """A diffusers `callback_on_step_end`: after step i, the next forward is step i + 1."""
        if step + 1 < self.config.schedule.num_steps:
            self.set_step(step + 1)
        return callback_kwargs

    def reset(self):
        """Starts a new generation at step 0 (call before each one, or when shapes change)."""
        for layer in self.layers.values():
            layer.reset()
        self.step = 0

    def step_reports(self, step):
        """{layer name: StepReport} of the layers that ran `step`."""
        out = {}
        for name, layer in self.layers.items():
            for r in layer.reports:
                if r.step == step:
                    out[name] = r
        return out
