// FlashOmni engine layer: the Update–Dispatch schedule and the Taylor (divided-difference)
// forecast.
#include <algorithm>

#include "flashomni/engine.h"
#include "flashomni/forecast.h"
#include "flashomni/numeric.h"

namespace flashomni {
namespace {

// Calls f(flat, offset) for every element of a CPU tensor of up to 4 dims, in row-major order.
template <typename F>
void for_each_element(const TensorRef& t, F&& f) {
  int64_t shape[kMaxDims] = {1, 1, 1, 1}, stride[kMaxDims] = {0, 0, 0, 0};
  const int pad = kMaxDims - t.ndim;
  for (int d = 0; d < t.ndim; ++d) {
    shape[pad + d] = t.shape[d];
    stride[pad + d] = t.stride[d];
  }
  int64_t flat = 0;
  for (int64_t a = 0; a < shape[0]; ++a)
    for (int64_t b = 0; b < shape[1]; ++b)
      for (int64_t c = 0; c < shape[2]; ++c) {
        const int64_t base = a * stride[0] + b * stride[1] + c * stride[2];
        for (int64_t e = 0; e < shape[3]; ++e) f(flat++, base + e * stride[3]);
      }
}

void check_value(const TensorRef& t, const char* name, int64_t size) {
  check_defined(t, name);
  check_device(t, name, Device::kCPU);
  check_dtype(t, name, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16});
  FLASHOMNI_CHECK_ARG(t.ndim >= 1 && t.ndim <= kMaxDims, name, "expected 1 to 4 dims, got ",
                      t.ndim);
  FLASHOMNI_CHECK_ARG(t.numel() == size, name, "expected ", size, " elements, got ", t.numel());
}

}  // namespace

const char* step_kind_name(StepKind kind) {
  switch (kind) {
    case StepKind::kUpdate:
      return "update";
    case StepKind::kDispatch:
      return "dispatch";
    case StepKind::kReuse:
      return "reuse";
  }
  return "unknown";
}

Schedule::Schedule(const ScheduleConfig& config) : config_(config) {
  FLASHOMNI_CHECK_ARG(config.num_steps > 0, "schedule.num_steps", "expected > 0, got ",
                      config.num_steps);
  FLASHOMNI_CHECK_ARG(config.warmup >= 0, "schedule.warmup", "expected >= 0, got ", config.warmup);
  FLASHOMNI_CHECK_ARG(config.interval > 0, "schedule.interval", "expected > 0, got ",
                      config.interval);
}

StepKind Schedule::step_kind(int32_t step) const {
  const ScheduleConfig& c = config_;
  FLASHOMNI_CHECK_ARG(step >= 0 && step < c.num_steps, "step", "expected in [0, ", c.num_steps,
                      "), got ", step);
  if (step < std::max(c.warmup, 1)) return StepKind::kUpdate;
  if ((step - std::max(c.warmup - 1, 0)) % c.interval == 0) return StepKind::kUpdate;
  if (c.last_dense && step == c.num_steps - 1) return StepKind::kUpdate;
  return StepKind::kDispatch;
}

int32_t Schedule::num_updates() const {
  int32_t n = 0;
  for (int32_t s = 0; s < config_.num_steps; ++s) n += step_kind(s) == StepKind::kUpdate;
  return n;
}

TaylorForecast::TaylorForecast(int32_t order, int64_t size) : order_(order), size_(size) {
  FLASHOMNI_CHECK_ARG(order >= 0 && order <= 2, "taylor_order", "expected 0, 1 or 2, got ", order);
  FLASHOMNI_CHECK_ARG(size >= 0, "size", "expected >= 0, got ", size);
}

int32_t TaylorForecast::effective_order() const {
  return steps_.empty() ? -1 : std::min<int32_t>(order_, points() - 1);
}

void TaylorForecast::reset() {
  steps_.clear();
  values_.clear();
}

void TaylorForecast::record(int32_t step, const TensorRef& value) {
  check_value(value, "value", size_);
  FLASHOMNI_CHECK_ARG(steps_.empty() || step > steps_.back(), "step",
                      "expected after the last "
                      "recorded step ",
                      steps_.empty() ? -1 : steps_.back(), ", got ", step);
  std::vector<float> v;
  if (static_cast<int32_t>(steps_.size()) == order_ + 1) {
    v = std::move(values_.front());  // reuse the oldest buffer
    values_.erase(values_.begin());
    steps_.erase(steps_.begin());
  }
  v.resize(size_);
  for_each_element(value, [&](int64_t flat, int64_t off) {
    v[flat] = static_cast<float>(load_as_double(value.data, value.dtype, off));
  });
  steps_.push_back(step);
  values_.push_back(std::move(v));
}

std::vector<int32_t> TaylorForecast::point_steps() const {
  const int32_t n = effective_order() + 1;
  return std::vector<int32_t>(steps_.end() - n, steps_.end());
}

std::vector<double> TaylorForecast::weights(int32_t step) const {
  FLASHOMNI_CHECK_ARG(!steps_.empty(), "forecast", "nothing recorded yet");
  // Lagrange basis: w_p = prod_{m != p} (s - t_m) / (t_p - t_m); e.g. points 7, 12, 17 at s = 18
  // give w = (0.12, -0.44, 1.32), summing to 1; at s = 21, (0.72, -2.24, 2.52).
  return lagrange_weights(point_steps(), step);
}

void TaylorForecast::forecast(int32_t step, const TensorRef& out) const {
  check_value(out, "out", size_);
  const std::vector<double> w = weights(step);
  const size_t first = values_.size() - w.size();
  for_each_element(out, [&](int64_t flat, int64_t off) {
    double acc = 0.0;
    for (size_t p = 0; p < w.size(); ++p) acc += w[p] * values_[first + p][flat];
    store_from_double(out.data, out.dtype, off, acc);
  });
}

}  // namespace flashomni
