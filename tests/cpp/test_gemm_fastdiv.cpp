// Host test of the GEMM kernel's FastDiv (src/cuda/gemm/gemm_params.h): the consumers decode tiles
// with it, so it must equal integer division for every dividend in [0, 2^31) and every divisor
// the launcher passes (grid, row tiles, column tiles, head groups). Built when CUDA is on.
#include <gtest/gtest.h>

#if FLASHOMNI_WITH_CUDA
#include <cstdint>
#include <random>
#include <vector>

#include "cuda/gemm/gemm_params.h"

namespace flashomni::cuda::gemm {
namespace {

TEST(GemmFastDiv, EqualsIntegerDivision) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> any(0, INT32_MAX);
  std::vector<int32_t> divisors;
  for (int32_t d = 1; d <= 1100; ++d) divisors.push_back(d);
  for (int i = 0; i < 200; ++i) divisors.push_back(any(rng) | 1);
  divisors.push_back(INT32_MAX);
  divisors.push_back(1 << 30);
  for (const int32_t d : divisors) {
    const FastDiv f(d);
    std::vector<int32_t> dividends = {0, 1, d - 1, d, INT32_MAX, INT32_MAX - 1};
    if (d < INT32_MAX) dividends.push_back(d + 1);
    for (int i = 0; i < 64; ++i) dividends.push_back(any(rng));
    for (int32_t q = 1; q < 4; ++q) {
      if (static_cast<int64_t>(d) * q <= INT32_MAX) dividends.push_back(d * q - 1);
    }
    for (const int32_t n : dividends) {
      ASSERT_EQ(f.div(n), n / d) << n << " / " << d;
    }
  }
}

TEST(GemmFastDiv, NonPositiveDivisorIsOne) {
  // The launcher passes row_tiles / n_tiles of empty operands as 0: those divide by 1.
  EXPECT_EQ(FastDiv(0).div(37), 37);
  EXPECT_EQ(FastDiv(0).d, 1);
}

}  // namespace
}  // namespace flashomni::cuda::gemm
#endif
