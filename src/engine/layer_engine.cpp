// FlashOmni engine layer: LayerEngine, one attention layer's Update–Dispatch state across steps.
#include <utility>

#include "flashomni/attention.h"
#include "flashomni/engine.h"
#include "flashomni/numeric.h"

namespace flashomni {
namespace {

// Sequence lengths of an attention call on host tensors (uniform [B, N, H, d] or varlen).
SeqLens seqlens_of(const AttentionParams& p) {
  SeqLens s;
  if (p.q.ndim == 4) {
    s.batch = static_cast<int32_t>(p.q.shape[0]);
    s.seqlen_q = static_cast<int32_t>(p.q.shape[1]);
    s.seqlen_kv = static_cast<int32_t>(p.k.shape[1]);
  } else {
    s.batch = static_cast<int32_t>(p.cu_seqlens_q.shape[0] - 1);
    s.seqlen_q = p.max_seqlen_q;
    s.seqlen_kv = p.max_seqlen_kv;
    s.cu_seqlens_q = p.cu_seqlens_q.ptr<const int32_t>();
    s.cu_seqlens_kv = p.cu_seqlens_kv.ptr<const int32_t>();
  }
  return s;
}

// Contiguous fp32 view of `data` with the shape of `like`.
TensorRef fp32_view(const TensorRef& like, std::vector<float>& data) {
  TensorRef view = like;
  view.data = data.data();
  view.dtype = DType::kFloat32;
  int64_t n = 1;
  for (int d = like.ndim - 1; d >= 0; --d) {
    view.stride[d] = n;
    n *= like.shape[d];
  }
  return view;
}

// Contiguous fp32 copy of a host tensor (any strides, any storage dtype).
void copy_fp32(const TensorRef& t, std::vector<float>& out) {
  out.resize(static_cast<size_t>(t.numel()));
  int64_t idx[kMaxDims] = {0, 0, 0, 0};
  for (size_t e = 0; e < out.size(); ++e) {
    int64_t off = 0;
    for (int d = 0; d < t.ndim; ++d) off += idx[d] * t.stride[d];
    out[e] = static_cast<float>(load_as_double(t.data, t.dtype, off));
    for (int d = t.ndim - 1; d >= 0 && ++idx[d] == t.shape[d]; --d) idx[d] = 0;
  }
}

}  // namespace

AttentionBackend cpu_attention_backend() {
  return [](const AttentionParams& p) { cpu::sparse_attention(p); };
}

LayerEngine::LayerEngine(const EngineConfig& config, AttentionBackend backend)
    : config_(config), schedule_(config.schedule), backend_(std::move(backend)) {
  config_.policy.num_steps = config.schedule.num_steps;
  FLASHOMNI_CHECK_ARG(static_cast<bool>(backend_), "backend", "expected a callable");
  FLASHOMNI_CHECK_ARG(config.reuse_below >= 0.0 && config.reuse_below <= 1.0, "reuse_below",
                      "expected in [0, 1], got ", config.reuse_below);
  // Same rule as validate_symbols, checked here so a bad size fails before the first step.
  for (const auto& [name, block] :
       {std::pair{"block_q", config.block_q}, std::pair{"block_kv", config.block_kv}}) {
    FLASHOMNI_CHECK_ARG(block >= 16 && block <= 1024 && block % 16 == 0, name,
                        "expected a positive multiple of 16 that is at most 1024, got ", block);
  }
  forecast_ = TaylorForecast(config.taylor_order, 0);
}

void LayerEngine::reset() {
  forecast_ = TaylorForecast(config_.taylor_order, 0);
  symbols_ = Symbols();
  density_ = SymbolDensitySummary();
  have_symbols_ = false;
  reuse_ = false;
  last_step_ = -1;
  prev_out_.clear();
}

StepKind LayerEngine::step_kind(int32_t step) const {
  const StepKind kind = schedule_.step_kind(step);
  if (kind == StepKind::kUpdate || forecast_.points() == 0 || !have_symbols_) {
    return StepKind::kUpdate;
  }
  return reuse_ ? StepKind::kReuse : StepKind::kDispatch;
}

StepReport LayerEngine::run_step(int32_t step, const AttentionParams& p,
                                 const std::vector<TextRange>& text) {
  FLASHOMNI_CHECK_ARG(step > last_step_, "step", "expected steps in increasing order: after ",
                      last_step_, ", got ", step, " (reset() starts a new generation)");
  FLASHOMNI_CHECK_ARG(p.symbols == nullptr, "symbols",
                      "expected nullptr: the engine supplies the symbols");
  // The forecast is written on the host; a GPU engine will run it as a kernel instead.
  check_attention(p, Device::kCPU);
  const int64_t size = p.out.numel();
  if (forecast_.points() > 0) {
    FLASHOMNI_CHECK_ARG(forecast_.size() == size, "out", "expected ", forecast_.size(),
                        " elements as in the earlier steps, got ", size,
                        " (reset() before changing shapes)");
  } else {
    forecast_ = TaylorForecast(config_.taylor_order, size);
  }

  StepReport report;
  report.step = step;
  report.kind = step_kind(step);
  if (report.kind == StepKind::kUpdate) {
    backend_(p);  // p.symbols == nullptr: dense
    const bool by_change = config_.policy.query_score == QueryScore::kOutputChange;
    forecast_.record(step, p.out);
    // New symbols only when the next step will read them.
    const bool next_dispatch = step + 1 < config_.schedule.num_steps &&
                               schedule_.step_kind(step + 1) == StepKind::kDispatch;
    if (next_dispatch) {
      PolicyParams pp;
      pp.q = p.q;
      pp.k = p.k;
      pp.seqlens = seqlens_of(p);
      pp.block_q = config_.block_q;
      pp.block_kv = config_.block_kv;
      pp.text = text;
      pp.step = step;
      pp.config = config_.policy;
      if (pp.config.softmax_scale <= 0.0f) pp.config.softmax_scale = p.softmax_scale;
      if (by_change) {
        pp.out_now = p.out;
        // The first update has no previous output: the policy caches nothing.
        if (!prev_out_.empty()) pp.out_prev = fp32_view(p.out, prev_out_);
      }
      PolicyResult r = run_policy(pp);
      symbols_ = std::move(r.symbols);
      density_ = r.density;
      have_symbols_ = true;
      reuse_ = density_.query.overall < config_.reuse_below;
      report.policy_ran = true;
    }
    if (by_change) copy_fp32(p.out, prev_out_);  // every update: the next one compares with it
  } else {
    report.forecast_points = forecast_.effective_order() + 1;
    forecast_.forecast(step, p.out);
    if (report.kind == StepKind::kDispatch) {
      const SymbolsRef ref = symbols_.ref();
      AttentionParams sparse = p;
      sparse.symbols = &ref;
      backend_(sparse);
      report.query_density = density_.query.overall;
      report.kv_density = density_.kv.overall;
      report.pair_density = density_.token_pair.overall;
    } else {
      report.query_density = report.kv_density = report.pair_density = 0.0;
    }
  }
  last_step_ = step;
  return report;
}

}  // namespace flashomni
