// FlashOmni engine layer: LayerEngine, one attention layer's Update–Dispatch state across steps.
#include <utility>

#include "flashomni/attention.h"
#include "flashomni/engine.h"

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
      PolicyResult r = run_policy(pp);
      symbols_ = std::move(r.symbols);
      density_ = r.density;
      have_symbols_ = true;
      reuse_ = density_.query.overall < config_.reuse_below;
      report.policy_ran = true;
    }
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
