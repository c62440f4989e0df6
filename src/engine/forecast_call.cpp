// FlashOmni engine layer: the stateless Taylor forecast call (forecast.h) — argument checks shared
// by the CPU and CUDA versions, the Lagrange weights, and the CPU version (TaylorForecast itself).
#include <algorithm>
#include <string>

#include "flashomni/engine.h"
#include "flashomni/forecast.h"

namespace flashomni {

std::vector<double> lagrange_weights(const std::vector<int32_t>& steps, int32_t step) {
  const auto n = static_cast<int32_t>(steps.size());
  std::vector<double> w(n, 1.0);
  for (int32_t p = 0; p < n; ++p) {
    for (int32_t m = 0; m < n; ++m) {
      if (m == p) continue;
      FLASHOMNI_CHECK_ARG(steps[p] != steps[m], "steps", "expected distinct steps, got ", steps[p],
                          " twice");
      w[p] *= static_cast<double>(step - steps[m]) / (steps[p] - steps[m]);
    }
  }
  return w;
}

std::vector<double> check_forecast(const ForecastParams& p, Device device) {
  const auto points = static_cast<int32_t>(p.history.size());
  FLASHOMNI_CHECK_ARG(points >= 1 && points <= kMaxForecastPoints, "history", "expected 1 to ",
                      kMaxForecastPoints, " values, got ", points);
  FLASHOMNI_CHECK_ARG(p.steps.size() == p.history.size(), "steps", "expected ", points,
                      " steps (one per history value), got ", p.steps.size());
  FLASHOMNI_CHECK_ARG(p.order >= 0 && p.order <= 2, "order", "expected 0, 1 or 2, got ", p.order);
  for (int32_t i = 1; i < points; ++i) {
    FLASHOMNI_CHECK_ARG(p.steps[i] > p.steps[i - 1], "steps",
                        "expected strictly increasing steps, got ", p.steps[i - 1], " then ",
                        p.steps[i]);
  }
  const bool cuda = device == Device::kCUDA;
  auto check_value = [&](const TensorRef& t, const std::string& name, int64_t size) {
    check_defined(t, name.c_str());
    check_device(t, name.c_str(), device);
    if (cuda) {
      check_dtype(t, name.c_str(), {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
      FLASHOMNI_CHECK_ARG(t.is_contiguous(), name, "expected a contiguous CUDA tensor");
    } else {
      check_dtype(t, name.c_str(),
                  {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16});
    }
    FLASHOMNI_CHECK_ARG(t.ndim >= 1 && t.ndim <= kMaxDims, name, "expected 1 to 4 dims, got ",
                        t.ndim);
    if (size >= 0) {
      FLASHOMNI_CHECK_ARG(t.numel() == size, name, "expected ", size, " elements, got ", t.numel());
    }
  };
  check_value(p.history[0], "history[0]", -1);
  const int64_t size = p.history[0].numel();
  for (int32_t i = 1; i < points; ++i) {
    check_value(p.history[i], "history[" + std::to_string(i) + "]", size);
  }
  check_value(p.out, "out", size);
  const int32_t used = std::min(p.order, points - 1) + 1;
  return lagrange_weights(std::vector<int32_t>(p.steps.end() - used, p.steps.end()), p.target_step);
}

void forecast(const ForecastParams& p) {
  const std::vector<double> w = check_forecast(p, Device::kCPU);
  const auto used = static_cast<int32_t>(w.size());
  const auto points = static_cast<int32_t>(p.history.size());
  // Recording only the points used makes TaylorForecast pick the same ones (its degree is
  // min(order, points - 1)); it stores fp32 and sums in double, which is the contract.
  TaylorForecast tf(p.order, p.out.numel());
  for (int32_t i = points - used; i < points; ++i) tf.record(p.steps[i], p.history[i]);
  tf.forecast(p.target_step, p.out);
}

}  // namespace flashomni
