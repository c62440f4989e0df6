// Host tests of the engine layer: schedule, Taylor forecast, and LayerEngine's Update–Dispatch
// steps (backend calls, forecast in cached rows, whole-layer-reuse fallback).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "flashomni/engine.h"

namespace flashomni {
namespace {

std::vector<int> update_steps(const Schedule& s) {
  std::vector<int> out;
  for (int i = 0; i < s.config().num_steps; ++i) {
    if (s.step_kind(i) == StepKind::kUpdate) out.push_back(i);
  }
  return out;
}

TEST(Schedule, DefaultsMatchTheReferenceCounter) {
  const Schedule s;
  EXPECT_EQ(update_steps(s),
            (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 12, 17, 22, 27, 32, 37, 42, 47, 49}));
  EXPECT_EQ(s.num_updates(), 17);
  EXPECT_THROW(s.step_kind(50), Error);
  EXPECT_THROW(s.step_kind(-1), Error);
}

TEST(Schedule, ConfigurableWarmupIntervalAndLastStep) {
  EXPECT_EQ(update_steps(Schedule({20, 0, 4, false})), (std::vector<int>{0, 4, 8, 12, 16}));
  EXPECT_EQ(update_steps(Schedule({20, 0, 4, true})), (std::vector<int>{0, 4, 8, 12, 16, 19}));
  EXPECT_EQ(update_steps(Schedule({10, 3, 3, true})), (std::vector<int>{0, 1, 2, 5, 8, 9}));
  EXPECT_EQ(update_steps(Schedule({4, 8, 5, true})), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_THROW(Schedule({10, 2, 0, true}), Error);
  EXPECT_THROW(Schedule({0, 2, 2, true}), Error);
}

// Three elements following three polynomials of degree <= 2 in the step.
double poly(int e, double s) {
  switch (e) {
    case 0:
      return 1.5;
    case 1:
      return 2.0 - 0.25 * s;
    default:
      return 0.5 + 0.1 * s - 0.03 * s * s;
  }
}

void record_at(TaylorForecast& f, int step) {
  float v[3];
  for (int e = 0; e < 3; ++e) v[e] = static_cast<float>(poly(e, step));
  f.record(step, make_tensor(v, DType::kFloat32, {3}));
}

std::vector<double> forecast_at(const TaylorForecast& f, int step) {
  double v[3];
  f.forecast(step, make_tensor(v, DType::kFloat64, {3}));
  return {v[0], v[1], v[2]};
}

TEST(TaylorForecast, ExactOnPolynomialsOfItsOrder) {
  // Uneven points: warm-up spacing 1, then 5 (the default schedule's 6, 7, 12).
  TaylorForecast f2(2, 3);
  for (int s : {5, 6, 7, 12}) record_at(f2, s);
  EXPECT_EQ(f2.point_steps(), (std::vector<int32_t>{6, 7, 12}));
  for (int s : {13, 16, 20}) {
    const std::vector<double> v = forecast_at(f2, s);
    for (int e = 0; e < 3; ++e) EXPECT_NEAR(v[e], poly(e, s), 1e-4) << e << " at " << s;
  }
  // Order 1 is exact on the linear elements only: the quadratic one misses by 0.03 (s-7)(s-12).
  TaylorForecast f1(1, 3);
  for (int s : {5, 7, 12}) record_at(f1, s);
  const std::vector<double> v1 = forecast_at(f1, 15);
  EXPECT_NEAR(v1[0], poly(0, 15), 1e-5);
  EXPECT_NEAR(v1[1], poly(1, 15), 1e-5);
  EXPECT_NEAR(v1[2] - poly(2, 15), 0.03 * 8 * 3, 1e-4);
  // Order 0 repeats the last point.
  TaylorForecast f0(0, 3);
  for (int s : {5, 7}) record_at(f0, s);
  EXPECT_NEAR(forecast_at(f0, 11)[1], poly(1, 7), 1e-6);
}

TEST(TaylorForecast, UsesFewerPointsAtFirst) {
  TaylorForecast f(2, 3);
  EXPECT_EQ(f.effective_order(), -1);
  EXPECT_THROW(forecast_at(f, 3), Error);
  record_at(f, 4);
  EXPECT_EQ(f.effective_order(), 0);
  EXPECT_NEAR(forecast_at(f, 6)[1], poly(1, 4), 1e-6);
  record_at(f, 5);
  EXPECT_EQ(f.effective_order(), 1);
  EXPECT_NEAR(forecast_at(f, 9)[1], poly(1, 9), 1e-5);  // linear element exact with 2 points
  const std::vector<double> w = f.weights(9);
  EXPECT_NEAR(w[0] + w[1], 1.0, 1e-12);
  EXPECT_THROW(record_at(f, 5), Error);  // steps must increase
  f.reset();
  EXPECT_EQ(f.points(), 0);
  EXPECT_THROW(TaylorForecast(3, 1), Error);
}

// Small joint-attention layer: 64 tokens (16 text first), blocks of 16, 2 heads, d = 16.
struct Layer {
  static constexpr int kN = 64, kH = 2, kD = 16;
  std::vector<float> q, k, v, out;
  explicit Layer(uint32_t seed) : q(kN * kH * kD), k(q.size()), v(q.size()), out(q.size()) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (size_t i = 0; i < q.size(); ++i) {
      q[i] = normal(rng);
      k[i] = 2.0f * q[i] + 0.3f * normal(rng);  // peaked: tokens attend to themselves
      v[i] = normal(rng);
    }
  }
  AttentionParams params() {
    AttentionParams p;
    p.q = make_tensor(q.data(), DType::kFloat32, {1, kN, kH, kD});
    p.k = make_tensor(k.data(), DType::kFloat32, {1, kN, kH, kD});
    p.v = make_tensor(v.data(), DType::kFloat32, {1, kN, kH, kD});
    p.out = make_tensor(out.data(), DType::kFloat32, {1, kN, kH, kD});
    return p;
  }
  // Step-dependent drift, so that the forecast has something to predict.
  void drift(int step) {
    for (size_t i = 0; i < v.size(); ++i) v[i] += 0.01f * std::sin(0.1f * step + i);
  }
};

EngineConfig small_config() {
  EngineConfig c;
  c.schedule = {12, 3, 3, true};  // updates 0, 1, 2, 5, 8, 11
  c.block_q = c.block_kv = 16;
  c.policy.tau_q = 10.0;
  c.policy.tau_kv = 10.0;
  c.reuse_below = 0.0;
  return c;
}

TEST(LayerEngine, CallsTheBackendAsScheduled) {
  Layer layer(1);
  std::vector<int> dense_calls, sparse_calls;
  LayerEngine engine(small_config(), [&](const AttentionParams& p) {
    (p.symbols ? sparse_calls : dense_calls).push_back(0);
    cpu::sparse_attention(p);
  });
  std::vector<StepKind> kinds;
  for (int s = 0; s < 12; ++s) {
    layer.drift(s);
    const StepReport r = engine.run_step(s, layer.params(), {text_first(16)});
    kinds.push_back(r.kind);
    EXPECT_EQ(r.policy_ran, s == 2 || s == 5 || s == 8) << s;
    if (r.kind == StepKind::kDispatch) {
      EXPECT_LT(r.pair_density, 1.0);
      EXPECT_EQ(r.forecast_points, 3);
    }
  }
  using K = StepKind;
  EXPECT_EQ(kinds, (std::vector<K>{K::kUpdate, K::kUpdate, K::kUpdate, K::kDispatch, K::kDispatch,
                                   K::kUpdate, K::kDispatch, K::kDispatch, K::kUpdate, K::kDispatch,
                                   K::kDispatch, K::kUpdate}));
  EXPECT_EQ(dense_calls.size(), 6u);
  EXPECT_EQ(sparse_calls.size(), 6u);
  EXPECT_THROW(engine.run_step(11, layer.params(), {}), Error);  // not after step 11
}

TEST(LayerEngine, CachedRowsHoldTheForecastAndActiveRowsAreComputed) {
  Layer layer(2);
  EngineConfig cfg = small_config();
  cfg.reuse_below = 0.0;
  LayerEngine engine(cfg, cpu_attention_backend());
  TaylorForecast mirror(2, static_cast<int64_t>(layer.out.size()));
  for (int s = 0; s < 4; ++s) {
    layer.drift(s);
    const StepReport r = engine.run_step(s, layer.params(), {text_first(16)});
    if (r.kind == StepKind::kUpdate) mirror.record(s, layer.params().out);
  }
  // Step 3 was a dispatch: compare row by row with the forecast and with attention under the
  // engine's symbols.
  const Symbols& sym = engine.symbols();
  std::vector<float> predicted(layer.out.size()), sparse(layer.out.size());
  mirror.forecast(3, make_tensor(predicted.data(), DType::kFloat32, {1, 64, 2, 16}));
  AttentionParams p = layer.params();
  const SymbolsRef ref = sym.ref();
  p.symbols = &ref;
  p.out = make_tensor(sparse.data(), DType::kFloat32, {1, 64, 2, 16});
  cpu::sparse_attention(p);
  int n_cached = 0;
  for (int t = 0; t < 64; ++t)
    for (int h = 0; h < 2; ++h) {
      const bool active = sym.query(0, h, t / 16);
      n_cached += !active;
      for (int c = 0; c < 16; ++c) {
        const size_t e = (t * 2 + h) * 16 + c;
        EXPECT_EQ(layer.out[e], active ? sparse[e] : predicted[e]) << t << " " << h;
      }
    }
  EXPECT_GT(n_cached, 0);
  EXPECT_LT(n_cached, 128);
}

TEST(LayerEngine, ZeroThresholdsReproduceDenseAttention) {
  Layer layer(3);
  EngineConfig cfg = small_config();
  cfg.policy.tau_q = cfg.policy.tau_kv = 0.0;
  LayerEngine engine(cfg, cpu_attention_backend());
  std::vector<float> dense(layer.out.size());
  for (int s = 0; s < 5; ++s) {
    layer.drift(s);
    const StepReport r = engine.run_step(s, layer.params(), {text_first(16)});
    AttentionParams p = layer.params();
    p.out = make_tensor(dense.data(), DType::kFloat32, {1, 64, 2, 16});
    cpu::sparse_attention(p);
    EXPECT_EQ(layer.out, dense) << "step " << s << " " << step_kind_name(r.kind);
  }
}

TEST(LayerEngine, FallsBackToWholeLayerReuse) {
  Layer layer(4);
  EngineConfig cfg = small_config();
  cfg.policy.tau_q = 1e6;  // cache every image block: query density 1/4 (the text block) < 0.3
  cfg.reuse_below = 0.3;
  int calls = 0;
  LayerEngine engine(cfg, [&](const AttentionParams& p) {
    ++calls;
    cpu::sparse_attention(p);
  });
  for (int s = 0; s < 3; ++s) engine.run_step(s, layer.params(), {text_first(16)});
  EXPECT_NEAR(engine.density().query.overall, 0.25, 1e-12);
  EXPECT_EQ(engine.step_kind(3), StepKind::kReuse);
  const std::vector<float> before = layer.out;
  const StepReport r = engine.run_step(3, layer.params(), {text_first(16)});
  EXPECT_EQ(r.kind, StepKind::kReuse);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r.pair_density, 0.0);
  // Unchanged inputs over steps 0..2: the forecast is the same output again.
  for (size_t e = 0; e < before.size(); ++e) EXPECT_NEAR(layer.out[e], before[e], 1e-5);
  // Just above the density: dispatch instead.
  cfg.reuse_below = 0.25;
  LayerEngine engine2(cfg, cpu_attention_backend());
  for (int s = 0; s < 3; ++s) engine2.run_step(s, layer.params(), {text_first(16)});
  EXPECT_EQ(engine2.step_kind(3), StepKind::kDispatch);
}

// Varlen batch (64 + 48 tokens, text last in each) with GQA (2 query heads on 1 kv head): with
// zero thresholds the engine reproduces dense attention; with large ones it runs sparse steps on
// valid per-request symbols.
TEST(LayerEngine, VarlenWithGqa) {
  const int total = 112, h = 2, d = 16;
  const int32_t cu[3] = {0, 64, 112};
  std::mt19937 rng(6);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(total * h * d), k(total * d), v(total * d), out(q.size()), dense(q.size());
  for (float& x : q) x = normal(rng);
  for (int t = 0; t < total; ++t)
    for (int c = 0; c < d; ++c) {
      k[t * d + c] = 2.0f * q[(t * h) * d + c] + 0.3f * normal(rng);
      v[t * d + c] = normal(rng);
    }
  AttentionParams p;
  p.q = make_tensor(q.data(), DType::kFloat32, {total, h, d});
  p.k = make_tensor(k.data(), DType::kFloat32, {total, 1, d});
  p.v = make_tensor(v.data(), DType::kFloat32, {total, 1, d});
  p.out = make_tensor(out.data(), DType::kFloat32, {total, h, d});
  p.cu_seqlens_q = p.cu_seqlens_kv = make_tensor(const_cast<int32_t*>(cu), DType::kInt32, {3});
  p.max_seqlen_q = p.max_seqlen_kv = 64;
  const std::vector<TextRange> text = {text_last(64, 16), text_last(48, 16)};
  AttentionParams ref = p;
  ref.out = make_tensor(dense.data(), DType::kFloat32, {total, h, d});
  EngineConfig cfg = small_config();
  cfg.policy.tau_q = cfg.policy.tau_kv = 0.0;
  LayerEngine exact(cfg, cpu_attention_backend());
  for (int s = 0; s < 5; ++s) {
    for (float& x : v) x += 0.01f;
    exact.run_step(s, p, text);
    cpu::sparse_attention(ref);
    EXPECT_EQ(out, dense) << s;
  }
  LayerEngine sparse(small_config(), cpu_attention_backend());
  double pair = 1.0;
  for (int s = 0; s < 5; ++s) pair = std::min(pair, sparse.run_step(s, p, text).pair_density);
  EXPECT_LT(pair, 1.0);
  EXPECT_FALSE(sparse.symbols().query(1, 0, 3));  // request 1 has 3 blocks: padding stays 0
}

TEST(LayerEngine, RejectsMisuse) {
  Layer layer(5);
  LayerEngine engine(small_config(), cpu_attention_backend());
  AttentionParams p = layer.params();
  const Symbols dense = Symbols::dense(SymbolShape{1, 2, 4, 4, 16, 16});
  const SymbolsRef ref = dense.ref();
  p.symbols = &ref;
  EXPECT_THROW(engine.run_step(0, p, {}), Error);
  engine.run_step(0, layer.params(), {});
  EXPECT_THROW(engine.run_step(0, layer.params(), {}), Error);
  EXPECT_THROW(LayerEngine(small_config(), AttentionBackend{}), Error);
  EngineConfig bad = small_config();
  bad.taylor_order = 3;
  EXPECT_THROW(LayerEngine(bad, cpu_attention_backend()), Error);
  bad = small_config();
  bad.block_kv = 20;
  EXPECT_THROW(LayerEngine(bad, cpu_attention_backend()), Error);
}

}  // namespace
}  // namespace flashomni
