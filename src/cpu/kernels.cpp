// FlashOmni CPU backend: typed row conversion and the blocked double matmul (see kernels.h).
#include "cpu/kernels.h"

#include <algorithm>
#include <cstring>

#include "flashomni/numeric.h"

namespace flashomni::cpu {
namespace {

template <typename T, double (*kToDouble)(T)>
void load_row(const void* base, int64_t offset, int64_t n, double* dst) {
  const T* src = static_cast<const T*>(base) + offset;
  for (int64_t i = 0; i < n; ++i) dst[i] = kToDouble(src[i]);
}

template <typename T, T (*kFromDouble)(double)>
void store_row(void* base, int64_t offset, int64_t n, const double* src) {
  T* dst = static_cast<T*>(base) + offset;
  for (int64_t i = 0; i < n; ++i) dst[i] = kFromDouble(src[i]);
}

double f32_in(float x) {
  return x;
}
double f64_in(double x) {
  return x;
}
double bf16_in(uint16_t x) {
  return bf16_to_float(x);
}
double fp16_in(uint16_t x) {
  return fp16_to_float(x);
}
float f32_out(double x) {
  return static_cast<float>(x);
}
double f64_out(double x) {
  return x;
}
// Via float, like store_from_double: double rounding only matters at exact float ties, far below
// one 16-bit ulp.
uint16_t bf16_out(double x) {
  return float_to_bf16(static_cast<float>(x));
}
uint16_t fp16_out(double x) {
  return float_to_fp16(static_cast<float>(x));
}

// The matmul: a C tile of 4 rows x 2 vectors held in registers for the whole k loop, so a k step
// costs 4 broadcasts of A and 2 vector loads of B for 8 vector FMAs. K runs in
// chunks of 128 so the B panel (128 x cols doubles, 128 KiB at cols = 128) stays in L2.
constexpr int64_t kRowBlock = 4;
constexpr int64_t kInnerChunk = 128;

// Plain loops over contiguous j: what the compiler vectorises on any target.
void matmul_rows_plain(int64_t r0, int64_t r1, int64_t j0, int64_t k0, int64_t k1, int64_t cols,
                       const double* a, int64_t lda, const double* b, int64_t ldb, double* c,
                       int64_t ldc) {
  for (int64_t r = r0; r < r1; ++r) {
    const double* ar = a + r * lda;
    double* __restrict cr = c + r * ldc;
    for (int64_t k = k0; k < k1; ++k) {
      const double x = ar[k];
      const double* __restrict bk = b + k * ldb;
      for (int64_t j = j0; j < cols; ++j) cr[j] += x * bk[j];
    }
  }
}

void matmul_portable(int64_t rows, int64_t inner, int64_t cols, const double* a, int64_t lda,
                     const double* b, int64_t ldb, double* c, int64_t ldc) {
  for (int64_t k0 = 0; k0 < inner; k0 += kInnerChunk) {
    const int64_t k1 = std::min(inner, k0 + kInnerChunk);
    matmul_rows_plain(0, rows, 0, k0, k1, cols, a, lda, b, ldb, c, ldc);
  }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FLASHOMNI_CPU_DISPATCH 1
// kWidth doubles: one zmm (AVX-512, 8) or one ymm (AVX2, 4); 8 accumulators + 2 B vectors fit
// both register files (the 8-wide tile built for AVX2, 2 ymm per vector, spilled: 0.8 GFLOP/s).
// Only ever a local inside the target-specific functions below, never passed across a call (no ABI
// issue). (Spelled as two plain typedefs: GCC drops vector_size on a dependent alias template.)
typedef double Vec8 __attribute__((vector_size(64)));
typedef double Vec4 __attribute__((vector_size(32)));

// Inlined into each target-specific wrapper, which compiles it for that instruction set.
template <typename V>
[[gnu::always_inline]] inline void matmul_simd_body(int64_t rows, int64_t inner, int64_t cols,
                                                    const double* a, int64_t lda, const double* b,
                                                    int64_t ldb, double* c, int64_t ldc) {
  constexpr int64_t kWidth = sizeof(V) / sizeof(double);
  static_assert(kWidth == 4 || kWidth == 8);
  for (int64_t k0 = 0; k0 < inner; k0 += kInnerChunk) {
    const int64_t k1 = std::min(inner, k0 + kInnerChunk);
    int64_t r = 0;
    for (; r + kRowBlock <= rows; r += kRowBlock) {
      const double* a0 = a + r * lda;
      int64_t j = 0;
      for (; j + 2 * kWidth <= cols; j += 2 * kWidth) {
        V acc[kRowBlock][2];
        for (int64_t rr = 0; rr < kRowBlock; ++rr) {
          std::memcpy(&acc[rr][0], c + (r + rr) * ldc + j, sizeof(V));
          std::memcpy(&acc[rr][1], c + (r + rr) * ldc + j + kWidth, sizeof(V));
        }
        for (int64_t k = k0; k < k1; ++k) {
          V b0, b1;
          std::memcpy(&b0, b + k * ldb + j, sizeof(V));
          std::memcpy(&b1, b + k * ldb + j + kWidth, sizeof(V));
          for (int64_t rr = 0; rr < kRowBlock; ++rr) {
            const double x = a0[rr * lda + k];
            acc[rr][0] += x * b0;
            acc[rr][1] += x * b1;
          }
        }
        for (int64_t rr = 0; rr < kRowBlock; ++rr) {
          std::memcpy(c + (r + rr) * ldc + j, &acc[rr][0], sizeof(V));
          std::memcpy(c + (r + rr) * ldc + j + kWidth, &acc[rr][1], sizeof(V));
        }
      }
      matmul_rows_plain(r, r + kRowBlock, j, k0, k1, cols, a, lda, b, ldb, c, ldc);
    }
    matmul_rows_plain(r, rows, 0, k0, k1, cols, a, lda, b, ldb, c, ldc);
  }
}

[[gnu::target("arch=x86-64-v4")]] void matmul_avx512(int64_t rows, int64_t inner, int64_t cols,
                                                     const double* a, int64_t lda, const double* b,
                                                     int64_t ldb, double* c, int64_t ldc) {
  matmul_simd_body<Vec8>(rows, inner, cols, a, lda, b, ldb, c, ldc);
}

[[gnu::target("arch=x86-64-v3")]] void matmul_avx2(int64_t rows, int64_t inner, int64_t cols,
                                                   const double* a, int64_t lda, const double* b,
                                                   int64_t ldb, double* c, int64_t ldc) {
  matmul_simd_body<Vec4>(rows, inner, cols, a, lda, b, ldb, c, ldc);
}
#endif

using MatmulFn = void (*)(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t,
                          double*, int64_t);

// The library is built for baseline x86-64 (SSE2, no FMA), so the widest kernel the CPU runs is
// picked once at first use. Measured on the dev box (AMD EPYC Zen 4, one thread, 128 x 64 x 128
// QK^T and 128 x 128 x 64 PV tiles): AVX-512 57 / 53 GFLOP/s, AVX2+FMA 44 / 43, portable 11 / 11.
MatmulFn pick_matmul() {
#ifdef FLASHOMNI_CPU_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return matmul_avx512;
  if (__builtin_cpu_supports("x86-64-v3")) return matmul_avx2;
#endif
  return matmul_portable;
}

}  // namespace

LoadRowFn row_loader(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return load_row<float, f32_in>;
    case DType::kFloat64:
      return load_row<double, f64_in>;
    case DType::kBFloat16:
      return load_row<uint16_t, bf16_in>;
    case DType::kFloat16:
      return load_row<uint16_t, fp16_in>;
    default:
      break;
  }
  fail_argument("dtype", "CPU backend expects float32, float64, bfloat16 or float16, got ",
                dtype_name(dtype));
}

StoreRowFn row_storer(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return store_row<float, f32_out>;
    case DType::kFloat64:
      return store_row<double, f64_out>;
    case DType::kBFloat16:
      return store_row<uint16_t, bf16_out>;
    case DType::kFloat16:
      return store_row<uint16_t, fp16_out>;
    default:
      break;
  }
  fail_argument("dtype", "CPU backend expects float32, float64, bfloat16 or float16, got ",
                dtype_name(dtype));
}

void matmul_acc(int64_t rows, int64_t inner, int64_t cols, const double* a, int64_t lda,
                const double* b, int64_t ldb, double* c, int64_t ldc) {
  static const MatmulFn fn = pick_matmul();
  fn(rows, inner, cols, a, lda, b, ldb, c, ldc);
}

}  // namespace flashomni::cpu
