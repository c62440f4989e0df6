// FlashOmni CUDA layer (common): host-side TMA tensor-map encoding for 16-bit row-major operands.
// Built per call on the host (no device access, so it is capturable); passed to kernels by value
// as __grid_constant__ parameters.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "flashomni/common.h"

namespace flashomni::cuda {

// A [batch, rows, cols] view of 2- or 4-byte elements (cols contiguous; strides in elements),
// moved in boxes of box_rows x box_cols with the 128-byte swizzle (box_cols * elem_bytes <= 128).
// Out-of-range box elements (rows past `rows`, negative rows, cols past `cols`) read as zero and
// are not written by stores. batch == 1 gives a rank-2 map. Throws Error(kCudaError) when the
// driver rejects the encoding.
CUtensorMap make_tensor_map(const void* base, int32_t elem_bytes, int64_t batch, int64_t rows,
                            int64_t cols, int64_t row_stride, int64_t batch_stride,
                            int32_t box_rows, int32_t box_cols);

}  // namespace flashomni::cuda
