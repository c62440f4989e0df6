// FlashOmni CUDA layer (GEMM): shared-memory layout of the kernel (the TMA ring, the epilogue's
// staging buffers and the barriers) and the ring position both sides of the pipeline track.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cuda/common/hopper.cuh"
#include "cuda/gemm/gemm_params.h"

namespace flashomni::cuda::gemm {

// Each stage: A 128 x 64 (16 KB) and B 256 x 64 (32 KB), K-major, 128-byte swizzled by TMA; every
// buffer starts on a 1024-byte boundary (the swizzle atom), as the wgmma descriptors require.
// Plus one staging buffer per consumer warpgroup of 64-row x 128-byte TMA store boxes: with 4
// stages (192 KB) two boxes (16 KB: two passes for a bf16 64 x 256 fragment), with 3 stages
// (144 KB) four (32 KB: one pass). Either way 224 KB, plus two 512-byte bias slots (a tile's 256
// 16-bit bias values, GemmKernelParams::bias_staged) and the barriers: with the alignment slack
// exactly the 227 KB limit at 4 stages.
template <int kStagesT>
struct alignas(1024) GemmSharedStorage {
  static constexpr int kStages = kStagesT;
  static constexpr int kEpilogueBoxes = kStages == kMaxStages ? 2 : 4;
  alignas(1024) uint8_t a[kStages][kTileM * kTileK * 2];
  alignas(1024) uint8_t b[kStages][kTileN * kTileK * 2];
  alignas(1024) uint8_t epilogue[2][kEpilogueBoxes * kEpilogueBoxBytes];
  alignas(16) uint8_t bias[2][kTileN * 2];  // by the CTA's bias-tile count, parity (bias_slot)
  uint64_t full[kStages];                   // TMA bytes landed (1 arrival + transaction count)
  uint64_t empty[kStages];   // the consumer warpgroups done reading (2, in a cluster 4 arrivals)
  uint64_t cache_full[2];    // a consumer's 16-bit cache tile landed in its staging buffer
  uint64_t partial_full[2];  // a K-split partial landed in the ring (gemm_split.cuh)
  uint64_t bias_full[2];     // a tile's bias landed in its slot (1 arrival + transaction count)
  uint64_t bias_empty[2];    // every consumer thread read it (256 arrivals)
  uint64_t peer_free;        // the pair's peer has read its ring for good (pair_split, 1 arrival)
};

template <int kStages>
inline constexpr std::size_t kSmemBytes = sizeof(GemmSharedStorage<kStages>) +
                                          1024;  // + alignment slack
static_assert(kSmemBytes<kMaxStages> <= 227 * 1024, "exceeds the sm_90 shared memory per block");
static_assert(kSmemBytes<kMaxStages - 1> <= 227 * 1024, "exceeds the sm_90 shared memory");

// The ring position in one register (stage in the low bits, the phase parity in bit 8, bit 16
// set in a cluster pair, GemmKernelParams::cluster, and in bits 17-18 a 2-bit count of the tiles
// that used a bias slot: slot = bit 17, its phase parity = bit 18): the consumers keep it live
// across every tile next to the 128 accumulators, where two registers made ptxas (13.0) spill
// one value of the K-split paths.
template <int kStages>
struct PipelineState {
  uint32_t bits = 0;
  __device__ __forceinline__ int32_t stage() const { return static_cast<int32_t>(bits & 0xffu); }
  __device__ __forceinline__ uint32_t phase() const { return (bits >> 8) & 1u; }
  __device__ __forceinline__ void advance() {
    bits = (bits & 0xffu) + 1 == kStages ? (bits & ~0xffu) ^ 0x100u : bits + 1;
  }
  __device__ __forceinline__ void set_pair() { bits |= 1u << 16; }
  __device__ __forceinline__ int32_t bias_slot() const { return (bits >> 17) & 1; }
  __device__ __forceinline__ uint32_t bias_phase() const { return (bits >> 18) & 1u; }
  __device__ __forceinline__ void bias_advance() {
    bits = (bits & ~(3u << 17)) | ((((bits >> 17) + 1) & 3u) << 17);
  }
  // A consumer warpgroup's leader hands a stage back: to its own producer, and in a pair also to
  // the peer's, which multicasts into this CTA's copy of the stage.
  __device__ __forceinline__ void release(uint64_t* empty) const {
    hopper::mbar_arrive(empty);
    if ((bits >> 16) & 1u) hopper::mbar_arrive_cluster(empty, hopper::cluster_ctarank() ^ 1u);
  }
};

}  // namespace flashomni::cuda::gemm
