// FlashOmni CUDA layer (GEMM): shared-memory layout of the kernel (the TMA ring and its
// barriers) and the ring position both sides of the pipeline track.
#pragma once

#include <cstdint>

#include "cuda/gemm/gemm_params.h"

namespace flashomni::cuda::gemm {

// Each stage: A 128 x 64 (16 KB) and B 256 x 64 (32 KB), K-major, 128-byte swizzled by TMA; every
// buffer starts on a 1024-byte boundary (the swizzle atom), as the wgmma descriptors require.
// Plus one 16 KB epilogue buffer per consumer warpgroup (two 64-row x 128-byte TMA store boxes):
// 192 + 32 KB + barriers = 224.1 KB, under the 227 KB limit with the alignment slack.
struct alignas(1024) GemmSharedStorage {
  alignas(1024) uint8_t a[kStages][kTileM * kTileK * 2];
  alignas(1024) uint8_t b[kStages][kTileN * kTileK * 2];
  alignas(1024) uint8_t epilogue[2][kEpilogueBytes];
  uint64_t full[kStages];   // TMA bytes landed (1 arrival + transaction count)
  uint64_t empty[kStages];  // both consumer warpgroups done reading (2 arrivals)
};

inline constexpr std::size_t kSmemBytes = sizeof(GemmSharedStorage) + 1024;  // + alignment slack
static_assert(kSmemBytes <= 227 * 1024, "exceeds the sm_90 shared memory per block");

struct PipelineState {
  int32_t stage = 0;
  uint32_t phase = 0;
  __device__ __forceinline__ void advance() {
    if (++stage == kStages) {
      stage = 0;
      phase ^= 1;
    }
  }
};

}  // namespace flashomni::cuda::gemm
