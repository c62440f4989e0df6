// FlashOmni CUDA layer: sparse attention traits — tile shapes, shared-memory layouts, wgmma tiled
// MMAs, TMA types, shared storage and device params of the sm_90a kernel (compile-time: dtype,
// head dim and tile only).
#pragma once

#include <cutlass/arch/barrier.h>
#include <cutlass/numeric_types.h>

#include <cstdint>
#include <cute/atom/copy_traits_sm90_tma.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>
#include <cutlass/pipeline/sm90_pipeline.hpp>

#include "cuda/attention/attention_plan.h"
#include "cuda/attention/attention_scheduler.cuh"

namespace flashomni::cuda::attention {

using namespace cute;

// Named hardware barriers (0 is __syncthreads). Counts are given at each use.
enum class NamedBarrier : uint32_t {
  kQueryEmpty = 1,    // Q buffer 0 (and 2 for buffer 1) may be overwritten: consumers (256)
                      // arrive after their last S GEMM, the producer warp (32) syncs
  kSchedulerWg0 = 3,  // ping-pong token of consumer warpgroup 0 (and 4 for warpgroup 1)
  kEpilogueWg0 = 5,   // per-warpgroup epilogue smem hand-off (and 6 for warpgroup 1)
};

// Warp roles: warpgroup 0 is the TMA producer (one active warp), 1 and 2 are the consumers.
enum class WarpGroupRole : int { kProducer = 0, kConsumer0 = 1, kConsumer1 = 2 };

template <class Element_, int kHeadDim_>
struct AttentionTraits {
  using Element = Element_;
  using ElementAccum = float;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kTileM = kBlockM;  // 128 query rows = one symbol query block
  static constexpr int kTileN = kBlockN;  // 128 keys = one symbol key block
  // 2 K/V stages: Q (32 KB) + K (64 KB) + V (64 KB) + O (32 KB) = 192 KB at head dim 128; a
  // third stage (+64 KB) would not fit the 227 KB per-block limit.
  static constexpr int kStages = 2;
  // Q is double-buffered so the next item's Q loads while this one runs: the load latency is
  // hidden, which matters for items with few kept key blocks (low density). 2 x 32 KB + 192 KB =
  // 224 KB at head dim 128, inside the 227 KB limit.
  static constexpr int kQStages = 2;
  static constexpr int kNumConsumerWarpGroups = 2;
  static constexpr int kNumConsumerThreads = kNumConsumerWarpGroups * 128;
  static constexpr int kNumThreads = kNumConsumerThreads + 128;
  // Register split (FA3's numbers for a TMA-only producer): 24 x 128 + 240 x 256 = 64512 of 65536.
  static constexpr int kProducerRegs = 24;
  static constexpr int kConsumerRegs = 240;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "head dim 64 or 128");

  using TileShapeQK = Shape<Int<kTileM>, Int<kTileN>, Int<kHeadDim>>;
  using TileShapePV = Shape<Int<kTileM>, Int<kHeadDim>, Int<kTileN>>;
  // Each consumer warpgroup owns 64 of the 128 query rows (atom layout 2 x 1 along M).
  using AtomLayout = Layout<Shape<_2, _1, _1>>;
  using TiledMmaQK = decltype(make_tiled_mma(
      GMMA::ss_op_selector<Element, Element, ElementAccum, TileShapeQK>(), AtomLayout{}));
  // P comes from registers (RS); V^T is MN-major (head dim contiguous in memory).
  using TiledMmaPV =
      decltype(make_tiled_mma(GMMA::rs_op_selector<Element, Element, ElementAccum, TileShapePV,
                                                   GMMA::Major::K, GMMA::Major::MN>(),
                              AtomLayout{}));

  using SmemLayoutQ = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Element>{},
                                             Shape<Int<kTileM>, Int<kHeadDim>>{}));
  using SmemLayoutK = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Element>{},
                                             Shape<Int<kTileN>, Int<kHeadDim>, Int<kStages>>{}));
  using SmemLayoutVt = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<Element>{},
                                              Shape<Int<kHeadDim>, Int<kTileN>, Int<kStages>>{},
                                              Step<_2, _1, _3>{}));
  using SmemLayoutO = SmemLayoutQ;

  // Global views: (seqlen, d, head, batch) for Q/K, (d, seqlen, head, batch) for V^T.
  using ShapeQKV = Shape<int32_t, int32_t, int32_t, int32_t>;
  using StrideQK = Stride<int64_t, _1, int64_t, int64_t>;
  using StrideVt = Stride<_1, int64_t, int64_t, int64_t>;

  using TmaQ = decltype(make_tma_copy(
      SM90_TMA_LOAD{},
      make_tensor(make_gmem_ptr(static_cast<Element const*>(nullptr)), ShapeQKV{}, StrideQK{}),
      SmemLayoutQ{}, Shape<Int<kTileM>, Int<kHeadDim>>{}, _1{}));
  using TmaK = decltype(make_tma_copy(
      SM90_TMA_LOAD{},
      make_tensor(make_gmem_ptr(static_cast<Element const*>(nullptr)), ShapeQKV{}, StrideQK{}),
      take<0, 2>(SmemLayoutK{}), Shape<Int<kTileN>, Int<kHeadDim>>{}, _1{}));
  using TmaV = decltype(make_tma_copy(
      SM90_TMA_LOAD{},
      make_tensor(make_gmem_ptr(static_cast<Element const*>(nullptr)), ShapeQKV{}, StrideVt{}),
      take<0, 2>(SmemLayoutVt{}), Shape<Int<kHeadDim>, Int<kTileN>>{}, _1{}));

  static constexpr uint32_t kTmaBytesQ = kTileM * kHeadDim * sizeof(Element);
  static constexpr uint32_t kTmaBytesK = kTileN * kHeadDim * sizeof(Element);
  static constexpr uint32_t kTmaBytesV = kTileN * kHeadDim * sizeof(Element);

  // 1024-byte alignment: the 128-byte swizzle pattern repeats every 8 rows x 128 bytes, and the
  // TMA writes and wgmma descriptors both assume a pattern-aligned base.
  struct SharedStorage {
    alignas(1024) cute::array<Element, cosize_v<SmemLayoutQ>> q[kQStages];
    alignas(1024) cute::array<Element, cosize_v<SmemLayoutK>> k;
    alignas(1024) cute::array<Element, cosize_v<SmemLayoutVt>> v;
    alignas(1024) cute::array<Element, cosize_v<SmemLayoutO>> o;
    alignas(8) uint64_t barrier_q[kQStages];
    uint64_t k_full[kStages];
    uint64_t k_empty[kStages];
    uint64_t v_full[kStages];
    uint64_t v_empty[kStages];
    ItemRing ring;
  };
  static constexpr int kSharedBytes = static_cast<int>(sizeof(SharedStorage));
  static_assert(kSharedBytes <= 227 * 1024, "shared storage exceeds the sm_90 per-block limit");

  struct Params {
    TmaQ tma_q;
    TmaK tma_k;
    TmaV tma_v;
    ShapeQKV shape_q;   // (total_q, d, heads, batch or 1)
    ShapeQKV shape_k;   // (total_kv, d, kv_heads, batch or 1)
    ShapeQKV shape_vt;  // (d, total_kv, kv_heads, batch or 1)
    Element* out;
    int64_t out_batch_stride, out_row_stride, out_head_stride;
    float* lse;
    int64_t lse_batch_stride, lse_head_stride, lse_row_stride;
    float scale_log2;  // softmax scale * log2(e): exp2 with the scale folded into one FFMA
    int32_t heads_per_kv;
    AttentionGeometry geo;
    const WorkItem* items;
    const int32_t* num_items;
    int32_t* next_item;
  };
};

// Named-barrier primitives (bar.sync / bar.arrive with an explicit thread count).
__device__ __forceinline__ void named_barrier_sync(uint32_t id, uint32_t threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(uint32_t id, uint32_t threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ uint32_t barrier_id(NamedBarrier b, int offset = 0) {
  return static_cast<uint32_t>(b) + static_cast<uint32_t>(offset);
}

}  // namespace flashomni::cuda::attention
