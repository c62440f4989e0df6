// FlashOmni tests: storage buffers in any float dtype and rounding-aware comparisons for the CPU
// backend suites (attention, GEMM).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "flashomni/numeric.h"
#include "flashomni/tensor.h"

namespace flashomni::testing {

inline constexpr DType kFloatDTypes[] = {DType::kFloat64, DType::kFloat32, DType::kBFloat16,
                                         DType::kFloat16};

// Host storage of `count` elements of `dtype` (8-byte aligned through the double backing).
class Buffer {
 public:
  Buffer(DType dtype, int64_t count, double fill = 0.0)
      : dtype_(dtype), count_(count), words_((count * dtype_size(dtype) + 7) / 8 + 1) {
    for (int64_t i = 0; i < count; ++i) set(i, fill);
  }
  void* data() { return words_.data(); }
  DType dtype() const { return dtype_; }
  int64_t count() const { return count_; }
  double get(int64_t i) const { return load_as_double(words_.data(), dtype_, i); }
  void set(int64_t i, double v) { store_from_double(words_.data(), dtype_, i, v); }
  TensorRef tensor(std::initializer_list<int64_t> shape) {
    return make_tensor(data(), dtype_, shape);
  }

 private:
  DType dtype_;
  int64_t count_;
  std::vector<double> words_;
};

// Fills elements [0, count) of `buf` with uniform(-range, range) values and returns what was stored
// (rounded to the buffer's dtype): the inputs a reference must use.
inline std::vector<double> fill_random(Buffer& buf, std::mt19937& rng, double range = 1.0) {
  std::uniform_real_distribution<double> dist(-range, range);
  std::vector<double> stored(buf.count());
  for (int64_t i = 0; i < buf.count(); ++i) {
    buf.set(i, dist(rng));
    stored[i] = buf.get(i);
  }
  return stored;
}

// One unit in the last place of `x` in `dtype` (normal range; subnormals use the smallest step).
inline double ulp(DType dtype, double x) {
  int mantissa = 52, min_exp = -1022;
  switch (dtype) {
    case DType::kFloat32:
      mantissa = 23;
      min_exp = -126;
      break;
    case DType::kBFloat16:
      mantissa = 7;
      min_exp = -126;
      break;
    case DType::kFloat16:
      mantissa = 10;
      min_exp = -14;
      break;
    default:
      break;
  }
  const int e = x == 0.0 ? min_exp : std::max(min_exp, std::ilogb(x));
  return std::ldexp(1.0, e - mantissa);
}

// Tolerance of a value the oracle computed in double then stored: fp64 storage keeps 1e-10
// relative; narrower storage allows one ulp of the stored type (the store rounds to nearest, at
// most half an ulp, so one ulp also absorbs the 1e-15 summation-order noise of the oracle).
inline double storage_tol(DType dtype, double ref) {
  const double noise = 1e-12 * std::max(1.0, std::fabs(ref));
  if (dtype == DType::kFloat64) return 1e-10 * std::max(1.0, std::fabs(ref));
  return ulp(dtype, ref) + noise;
}

}  // namespace flashomni::testing
