// FlashOmni CPU backend: the building blocks of the oracle — typed row conversion to/from double
// and one cache-blocked double matmul-accumulate used by attention, GEMM-Q and GEMM-O.
#pragma once

#include <cstdint>

#include "flashomni/common.h"

namespace flashomni::cpu {

// dst[0..n) = storage[offset .. offset + n) as double (contiguous elements).
using LoadRowFn = void (*)(const void* base, int64_t offset, int64_t n, double* dst);
// storage[offset .. offset + n) = src rounded to the storage type (nearest even).
using StoreRowFn = void (*)(void* base, int64_t offset, int64_t n, const double* src);

// Float types only (fp32, fp64, bf16, fp16); validators reject the others before we get here.
LoadRowFn row_loader(DType dtype);
StoreRowFn row_storer(DType dtype);

// c[r * ldc + j] += sum_k a[r * lda + k] * b[k * ldb + j] for r < rows, j < cols, k < inner.
// Row-major B lets the vector lanes run over contiguous j, so no sum is reassociated: each c
// element is accumulated over k in order (with FMA on AVX2/AVX-512 machines, plain mul+add
// elsewhere; both exact to double rounding per step).
void matmul_acc(int64_t rows, int64_t inner, int64_t cols, const double* a, int64_t lda,
                const double* b, int64_t ldb, double* c, int64_t ldc);

}  // namespace flashomni::cpu
