// FlashOmni CUDA layer (GEMM): the producer — one thread of the producer warpgroup walks the tiles
// of this CTA and issues the TMA loads of their active k-blocks into the shared-memory ring.
#pragma once

#include "cuda/common/hopper.cuh"
#include "cuda/gemm/gemm_scheduler.cuh"
#include "cuda/gemm/gemm_smem.cuh"

namespace flashomni::cuda::gemm {

// Dispatch starts every tile from the cached partial sum: pull its rows into L2 now, while the
// consumers still finish the previous tile, so their loads of it do not wait on DRAM.
__device__ __forceinline__ void prefetch_cache_tile(const GemmKernelParams& p, const Tile& t) {
  const int32_t elem = p.cache_fp32 ? 4 : 2;
  const int32_t cols = min(t.n_width, p.cols - t.n0);
  const uint32_t bytes = static_cast<uint32_t>(cols * elem) & ~15u;
  if (bytes == 0) return;
  const auto* base =
      static_cast<const uint8_t*>(p.cache) + (t.b * p.cache_batch_stride + t.n0) * elem;
  const int32_t first = max(t.m0, 0), last = min(t.m0 + kTileM, p.rows);
  for (int32_t row = first; row < last; ++row) {
    hopper::prefetch_l2(base + static_cast<int64_t>(row) * p.cache_row_stride * elem, bytes);
  }
}

// The tile's bias into the next bias slot (bias_staged_tile), ahead of its first k-block: GEMM-Q
// one copy per head slot (head_dim x 2 bytes), GEMM-O update one of the tile's columns (the
// launcher stages only 16-byte-aligned biases with N % 8 == 0, so every copy is whole 16 bytes).
template <typename Smem>
__device__ __forceinline__ void stage_bias(const GemmKernelParams& p, const Tile& t, Smem& smem,
                                           PipelineState<Smem::kStages>& state) {
  const int32_t slot = state.bias_slot();
  hopper::mbar_wait(&smem.bias_empty[slot], state.bias_phase() ^ 1);
  uint64_t* full = &smem.bias_full[slot];
  const uint32_t bytes_all = static_cast<uint32_t>(bias_cols(p, t)) * 2;
  hopper::mbar_arrive_expect_tx(full, bytes_all);
  const auto* bias = static_cast<const uint8_t*>(p.bias);
  if (p.mode == GemmMode::kQ) {
    const uint32_t bytes = static_cast<uint32_t>(p.head_dim) * 2;
    for (int32_t s = 0; s < t.slots; ++s) {
      const int32_t head = static_cast<int32_t>((t.heads >> (8 * s)) & 0xffu);
      hopper::bulk_load(smem.bias[slot] + s * bytes, bias + head * bytes, bytes, full);
    }
  } else if (bytes_all > 0) {  // none: the arrival alone completes the slot's phase
    hopper::bulk_load(smem.bias[slot], bias + 2 * t.n0, bytes_all, full);
  }
  state.bias_advance();
}

template <typename Smem>
__device__ __forceinline__ void producer_loop(const GemmKernelParams& p, const CUtensorMap* a_map,
                                              const CUtensorMap* b_map, Smem& smem) {
  PipelineState<Smem::kStages> state;
  const ItemList list = item_list(p);
  constexpr uint32_t kBytesA = kTileM * kTileK * 2;
  const uint32_t b_box_bytes = static_cast<uint32_t>(p.b_box_rows) * kTileK * 2;
  for (int32_t k = round_item(0); k < list.count; k = next_round_item(p, k)) {
    const Tile t = get_tile(p, list, k);
    if (t.idle) continue;
    // GEMM-Q loads one weight box per used head slot; GEMM-O one per 128 output columns.
    const int32_t boxes = p.mode == GemmMode::kQ ? t.slots : t.n_width / p.b_box_rows;
    // A tall GEMM-Q item's second row tile goes into the B buffer's unused second half (one
    // 128-row head box fills the first): 48 KB a k-block, as a whole group.
    const uint32_t bytes = kBytesA + boxes * b_box_bytes + (t.tall ? kBytesA : 0);
    // A 16-bit cache in the 3-stage kernel comes by TMA into the staging buffers instead
    // (cache_staged).
    if (p.mode == GemmMode::kODispatch && !split_partial(t.split) &&
        (p.cache_fp32 || Smem::kEpilogueBoxes < 4)) {
      prefetch_cache_tile(p, t);
    }
    if (bias_staged_tile(p, t)) stage_bias(p, t, smem, state);
    for_each_k_block(p, t, [&](int32_t k_col) {
      hopper::mbar_wait(&smem.empty[state.stage()], state.phase() ^ 1);
      hopper::mbar_arrive_expect_tx(&smem.full[state.stage()], bytes);
      uint8_t* a_dst = smem.a[state.stage()];
      // A pair K split unit is not multicast: each CTA of the pair loads its own K half of A.
      if (p.cluster && !pair_split(t.split)) {
        // This CTA's 64 rows of the pair's shared A tile, into both CTAs' stage (a_map + 1 is
        // GemmTensorMaps::a_half: one pointer fewer in the producer's 40 registers).
        const uint32_t rank = hopper::cluster_ctarank();
        uint8_t* half = a_dst + rank * (kBytesA / 2);
        const int32_t row = t.m0 + static_cast<int32_t>(rank) * (kTileM / 2);
        if (p.batch > 1) {
          hopper::tma_load_3d_multicast(half, a_map + 1, &smem.full[state.stage()], k_col, row, t.b,
                                        0x3);
        } else {
          hopper::tma_load_2d_multicast(half, a_map + 1, &smem.full[state.stage()], k_col, row,
                                        0x3);
        }
      } else if (p.batch > 1) {
        hopper::tma_load_3d(a_dst, a_map, &smem.full[state.stage()], k_col, t.m0, t.b);
        if (t.tall) {
          hopper::tma_load_3d(smem.b[state.stage()] + b_box_bytes, a_map, &smem.full[state.stage()],
                              k_col, t.m0_2, t.b2);
        }
      } else {
        hopper::tma_load_2d(a_dst, a_map, &smem.full[state.stage()], k_col, t.m0);
        if (t.tall) {
          hopper::tma_load_2d(smem.b[state.stage()] + b_box_bytes, a_map, &smem.full[state.stage()],
                              k_col, t.m0_2);
        }
      }
      for (int32_t box = 0; box < boxes; ++box) {
        const int32_t row = p.mode == GemmMode::kQ
                                ? static_cast<int32_t>((t.heads >> (8 * box)) & 0xffu) * p.head_dim
                                : t.n0 + box * p.b_box_rows;
        hopper::tma_load_2d(smem.b[state.stage()] + box * b_box_bytes, b_map,
                            &smem.full[state.stage()], k_col, row);
      }
      state.advance();
    });
  }
}

}  // namespace flashomni::cuda::gemm
