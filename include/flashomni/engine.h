// FlashOmni engine layer: Update–Dispatch across diffusion steps for one attention layer (spec §5)
// — the step schedule, the Taylor forecast of cached outputs, the whole-layer-reuse fallback, and
// LayerEngine, which drives an attention backend (the CPU oracle now; a GPU one plugs in later).
//
// Example (one layer, S = 50 steps, FLUX-like text first):
//   EngineConfig cfg;                                      // W = 8, N = 5, S = 50, order 2
//   LayerEngine layer(cfg, cpu_attention_backend());
//   for (int s = 0; s < 50; ++s) {
//     AttentionParams p{.q = q, .k = k, .v = v, .out = out};   // this step's activations
//     StepReport r = layer.run_step(s, p, {text_first(512)});  // out holds the layer's output
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "flashomni/attention.h"
#include "flashomni/policy.h"
#include "flashomni/symbols_stats.h"

namespace flashomni {

enum class StepKind : int32_t {
  kUpdate = 0,    // dense attention; the policy chooses new symbols; the forecast gets a point
  kDispatch = 1,  // sparse attention over active blocks; cached rows hold the forecast
  kReuse = 2,     // whole-layer reuse: every row is the forecast, no attention at all
};
const char* step_kind_name(StepKind kind);

struct ScheduleConfig {
  int32_t num_steps = 50;  // S
  int32_t warmup = 8;      // W: steps 0..W-1 are updates
  int32_t interval = 5;    // N: after warm-up, an update every N steps
  bool last_dense = true;  // step S-1 is an update
};

// Update steps: s < max(W, 1); s with (s - max(W - 1, 0)) % N == 0; and S - 1 when last_dense.
// Defaults (S = 50, W = 8, N = 5): updates 0..7, 12, 17, ..., 47, 49 — 17 updates, 33 dispatches.
// This matches the reference's counter (the first update after warm-up is W - 1 + N).
class Schedule {
 public:
  explicit Schedule(const ScheduleConfig& config = {});
  const ScheduleConfig& config() const { return config_; }
  StepKind step_kind(int32_t step) const;  // kUpdate or kDispatch; throws outside [0, S)
  int32_t num_updates() const;

 private:
  ScheduleConfig config_;
};

// Forecast of a tensor from its values at the last update steps: the polynomial of degree
// min(order, points - 1) through the last min(order, points - 1) + 1 recorded points, evaluated at
// the step. This is a Taylor series about the last point whose derivatives are Newton divided
// differences (TaylorSeer's finite differences, made exact for uneven step spacing, e.g. the gap
// from the warm-up's spacing of 1 to the interval's 5); it reproduces any polynomial of degree
// <= order exactly. Evaluated as a weighted sum of the stored values (Lagrange weights), one
// multiply-add per point and element: the same data-parallel step a GPU version runs.
class TaylorForecast {
 public:
  TaylorForecast() = default;
  TaylorForecast(int32_t order, int64_t size);  // order in [0, 2]; size = elements per value

  int32_t order() const { return order_; }
  int64_t size() const { return size_; }
  int32_t points() const { return static_cast<int32_t>(steps_.size()); }
  // Degree used by forecast(): min(order, points - 1); -1 before the first record.
  int32_t effective_order() const;
  void reset();

  // Records the value at `step` (after every earlier recorded step). `value` is any CPU tensor of
  // `size` elements (fp32/fp64/fp16/bf16, strides honoured); stored in fp32.
  void record(int32_t step, const TensorRef& value);
  // Weights w_p of the points used (oldest first) with forecast(step) = sum_p w_p value_p.
  std::vector<double> weights(int32_t step) const;
  std::vector<int32_t> point_steps() const;  // steps of the points used (oldest first)
  // Writes the forecast at `step` into `out` (same element count as the recorded values).
  void forecast(int32_t step, const TensorRef& out) const;

 private:
  int32_t order_ = 0;
  int64_t size_ = 0;
  std::vector<int32_t> steps_;              // last order + 1 recorded steps, oldest first
  std::vector<std::vector<float>> values_;  // matching values
};

// The attention call the engine makes: dense when p.symbols == nullptr. Must leave the rows of
// cached (b, h, i) untouched (spec §2): the engine writes the forecast there first.
using AttentionBackend = std::function<void(const AttentionParams&)>;
AttentionBackend cpu_attention_backend();  // cpu::sparse_attention

struct EngineConfig {
  ScheduleConfig schedule;
  PolicyConfig policy;  // policy.num_steps is taken from schedule.num_steps
  int32_t taylor_order = 2;
  // Query density (symbols of the last update, over all (b, h, i)) below which the following
  // dispatch steps reuse the whole layer (StepKind::kReuse).
  double reuse_below = 0.3;
  int32_t block_q = kDefaultBlockQ;
  int32_t block_kv = kDefaultBlockKV;
};

struct StepReport {
  int32_t step = 0;
  StepKind kind = StepKind::kUpdate;
  // Work done this step: 1 for an update, the symbols' densities for a dispatch, 0 for a reuse.
  double query_density = 1.0;
  double kv_density = 1.0;
  double pair_density = 1.0;    // attention FLOP fraction vs dense
  int32_t forecast_points = 0;  // points behind the forecast written (0 at an update)
  bool policy_ran = false;      // new symbols chosen at this (update) step
};

// Per-layer state across the steps of one generation. Call run_step with steps in increasing
// order; reset() before the next generation (or when the shapes change).
class LayerEngine {
 public:
  LayerEngine(const EngineConfig& config, AttentionBackend backend);

  const EngineConfig& config() const { return config_; }
  const Schedule& schedule() const { return schedule_; }
  // What run_step(step) will do: the schedule, an update when nothing was recorded yet, and
  // kReuse for a dispatch while the last update's query density is below reuse_below.
  StepKind step_kind(int32_t step) const;

  // p: this step's q, k, v, out (CPU tensors: the forecast is written on the host), optional lse,
  // softmax scale; p.symbols must be null (the engine supplies its own). text: the text range(s)
  // for the policy (policy.h). On return `out` holds the layer's attention output for the step;
  // lse rows of cached blocks (and all of lse at a reuse step) keep what the caller had there.
  StepReport run_step(int32_t step, const AttentionParams& p, const std::vector<TextRange>& text);

  // Symbols chosen at the last update that ran the policy (empty before).
  const Symbols& symbols() const { return symbols_; }
  const SymbolDensitySummary& density() const { return density_; }
  const TaylorForecast& forecast() const { return forecast_; }
  void reset();

 private:
  EngineConfig config_;
  Schedule schedule_;
  AttentionBackend backend_;
  TaylorForecast forecast_;
  Symbols symbols_;
  SymbolDensitySummary density_;
  bool have_symbols_ = false;
  bool reuse_ = false;
  int32_t last_step_ = -1;
  // The previous update's output (fp32, contiguous, out's shape) for QueryScore::kOutputChange;
  // empty before the first update and when the text-image score is used.
  std::vector<float> prev_out_;
};

}  // namespace flashomni
