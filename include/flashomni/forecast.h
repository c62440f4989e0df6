// FlashOmni engine layer: the Taylor forecast as one stateless call — out = sum_p w_p history_p
// over the last update steps' values (the same polynomial TaylorForecast in engine.h evaluates).
// The CPU version is the oracle; cuda::forecast (policy_cuda.h) runs the same weighted sum on the
// GPU with the weights computed here on the host from the step indices.
//
// Example (GEMM-O cache C recorded at update steps 7, 12 and 17; forecast at dispatch step 19):
//   ForecastParams f;
//   f.history = {c7, c12, c17};   // oldest first, same element count
//   f.steps = {7, 12, 17};
//   f.target_step = 19; f.order = 2; f.out = c_now;
//   forecast(f);                   // c_now = 0.28 c7 - 0.96 c12 + 1.68 c17 (elementwise)
#pragma once

#include <cstdint>
#include <vector>

#include "flashomni/tensor.h"

namespace flashomni {

inline constexpr int32_t kMaxForecastPoints = 3;  // order <= 2 needs at most 3 points

// Lagrange weights w_p = prod_{m != p} (step - t_m) / (t_p - t_m) of the points `steps` (distinct):
// the polynomial through them, evaluated at `step`, is sum_p w_p value_p.
std::vector<double> lagrange_weights(const std::vector<int32_t>& steps, int32_t step);

struct ForecastParams {
  std::vector<TensorRef> history;  // 1..3 values, oldest first, one element count
  std::vector<int32_t> steps;      // their step indices, strictly increasing
  int32_t target_step = 0;
  int32_t order = 2;  // 0..2; uses the last min(order, points - 1) + 1 points
  TensorRef out;      // same element count as each history value
};

// Checks the arguments (naming "history", "steps", "order", "out", ...) for `device` and returns
// the weights of the points used, oldest first (the last weights.size() history entries).
std::vector<double> check_forecast(const ForecastParams& p, Device device);

// CPU: exactly TaylorForecast (values read as fp32, weighted sum in double, one rounding at the
// store). Any strides, dtypes fp32 / fp64 / fp16 / bf16.
void forecast(const ForecastParams& p);

}  // namespace flashomni
