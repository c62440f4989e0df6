// FlashOmni CUDA layer (GEMM): shared-memory layout of the kernel (the TMA ring, the epilogue's
// staging buffers and the barriers) and the ring position both sides of the pipeline track.
#pragma once

#include <cstdint>

#include "cuda/gemm/gemm_params.h"

namespace flashomni::cuda::gemm {

// Each stage: A 128 x 64 (16 KB) and B 256 x 64 (32 KB), K-major, 128-byte swizzled by TMA; every
// buffer starts on a 1024-byte boundary (the swizzle atom), as the wgmma descriptors require.
// Stages 0-2 have their own buffers (144 KB); an 80 KB tail holds either stage 3 (48 KB) and a
// 16 KB epilogue buffer per consumer warpgroup (two 64-row x 128-byte TMA store boxes: two passes
// for a bf16 64 x 256 fragment) or, with 3 stages, a 32 KB buffer per warpgroup (four boxes: one
// pass). kStageLayouts in gemm_params.h says which a launch uses. 224 KB + barriers, under the
// 227 KB limit with the alignment slack.
struct alignas(1024) GemmSharedStorage {
  static constexpr int kABytes = kTileM * kTileK * 2;
  static constexpr int kBBytes = kTileN * kTileK * 2;
  static constexpr int kTailBytes = kABytes + kBBytes + 2 * 2 * kEpilogueBoxBytes;
  alignas(1024) uint8_t a[kMaxStages - 1][kABytes];
  alignas(1024) uint8_t b[kMaxStages - 1][kBBytes];
  alignas(1024) uint8_t tail[kTailBytes];
  uint64_t full[kMaxStages];   // TMA bytes landed (1 arrival + transaction count)
  uint64_t empty[kMaxStages];  // both consumer warpgroups done reading (2 arrivals)

  __device__ __forceinline__ uint8_t* stage_a(int32_t s) {
    return s < kMaxStages - 1 ? a[s] : tail;
  }
  __device__ __forceinline__ uint8_t* stage_b(int32_t s) {
    return s < kMaxStages - 1 ? b[s] : tail + kABytes;
  }
  // The warpgroup's staging buffer: epilogue_boxes(stages) boxes of kEpilogueBoxBytes.
  __device__ __forceinline__ uint8_t* epilogue(int32_t stages, int32_t warpgroup) {
    if (stages == kMaxStages) return tail + kABytes + kBBytes + warpgroup * 2 * kEpilogueBoxBytes;
    return tail + warpgroup * 4 * kEpilogueBoxBytes;
  }
};
static_assert(GemmSharedStorage::kTailBytes >= 2 * 4 * kEpilogueBoxBytes, "3-stage epilogue");

inline constexpr std::size_t kSmemBytes = sizeof(GemmSharedStorage) + 1024;  // + alignment slack
static_assert(kSmemBytes <= 227 * 1024, "exceeds the sm_90 shared memory per block");

// Boxes a warpgroup stages per pass: 2 with 4 stages, 4 with 3.
__device__ __forceinline__ int32_t epilogue_boxes(int32_t stages) {
  return stages == kMaxStages ? 2 : 4;
}

struct PipelineState {
  int32_t stage = 0;
  uint32_t phase = 0;
  int32_t stages = kMaxStages;  // ring length of this launch (3 or 4)
  __device__ __forceinline__ explicit PipelineState(int32_t n) : stages(n) {}
  __device__ __forceinline__ void advance() {
    if (++stage == stages) {
      stage = 0;
      phase ^= 1;
    }
  }
};

}  // namespace flashomni::cuda::gemm
