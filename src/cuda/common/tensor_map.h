// FlashOmni CUDA layer (common): host-side TMA tensor-map encoding for 16-bit row-major operands.
// Built per call on the host (no device access, so it is capturable); passed to kernels by value
// as __grid_constant__ parameters.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "flashomni/common.h"

namespace flashomni::cuda {

// A [batch, rows, cols] view of 16-bit elements (cols contiguous; strides in elements), loaded in
// boxes of box_rows x box_cols (box_cols * 2 bytes <= 128 for the 128-byte swizzle). Out-of-range
// box elements (rows past `rows`, negative rows, cols past `cols`) read as zero. batch == 1 gives
// a rank-2 map. Throws Error(kCudaError) when the driver rejects the encoding.
CUtensorMap make_tensor_map_16bit(const void* base, int64_t batch, int64_t rows, int64_t cols,
                                  int64_t row_stride, int64_t batch_stride, int32_t box_rows,
                                  int32_t box_cols);

}  // namespace flashomni::cuda
