// FlashOmni CUDA layer (GEMM): the planner — turns Sq into the compact work list of the sparse
// GEMMs on the GPU (one CTA, a few microseconds, no host synchronisation).
//   GEMM-Q: one item per group of up to `slots` active heads of a row tile, row-tile major so the
//           CTAs running at once share X rows and W_q in L2, full groups before partial ones, the
//           last round's full groups split in halves where that shortens it (last_round_split);
//           cached (row tile, head) pairs vanish.
//   GEMM-O: one entry per row tile with its active-head mask, sorted by k-blocks to reduce
//           (descending) so the persistent CTAs take the longest row tiles first.
#include "cuda/common/hopper.cuh"
#include "cuda/common/work_list.cuh"
#include "cuda/gemm/gemm_params.h"
#include "cuda/runtime.h"

namespace flashomni::cuda::gemm {
namespace {

struct RowTile {
  int32_t b, m0;
  uint64_t mask;  // active heads; 0 when the tile holds no row of [0, M)
};

__device__ __forceinline__ RowTile row_tile(const GemmPlanParams& p, int32_t index) {
  RowTile t{index / p.row_tiles, 0, 0};
  const int32_t local = index % p.row_tiles;
  const int32_t block = p.first_block + local / p.chunks_per_block;
  t.m0 = block * p.block_q + (local % p.chunks_per_block) * kTileM - p.row_offset;
  if (block >= p.symbols.shape.q_blocks || t.m0 + kTileM <= 0 || t.m0 >= p.rows) return t;
  for (int32_t h = 0; h < p.heads; ++h) {
    if (query_active(p.symbols, t.b, h, block)) t.mask |= 1ull << h;
  }
  return t;
}

__device__ __forceinline__ bool in_range(const GemmPlanParams& p, const RowTile& t) {
  return t.m0 + kTileM > 0 && t.m0 < p.rows;
}

__global__ void __launch_bounds__(kPlannerThreads, 1) gemm_planner_kernel(const GemmPlanParams p) {
  // Let the GEMM kernel start its prologue (barriers, tensor-map prefetch) while we plan; it
  // waits (griddepcontrol.wait) for this grid's completion before reading the list.
  hopper::grid_launch_dependents();
  // The K split's flags start at zero in every call (the GEMM kernel waits for this grid).
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i < p.split_flag_count;
       i += kPlannerThreads) {
    p.split_flags[i] = 0;
  }
  const int32_t candidates = p.batch * p.row_tiles;
  if (p.mode == GemmMode::kQ) {
    // Whole groups (all `slots` heads) first, then the at most one partial group per row tile
    // (half the wgmma work or less), so the short items fill the last round; whole groups from
    // split_from on are emitted as two half-width items each (last_round_split).
    __shared__ int32_t scratch[kPlannerThreads / 32 + 1];
    int32_t full_total = 0, partial_total = 0;
    for (int32_t start = 0; start < candidates; start += kPlannerThreads) {
      const int32_t index = start + static_cast<int32_t>(threadIdx.x);
      const int32_t active = index < candidates ? __popcll(row_tile(p, index).mask) : 0;
      int32_t full = 0, partial = 0;
      work_list::block_exclusive_scan<kPlannerThreads>(active / p.slots, scratch, &full);
      work_list::block_exclusive_scan<kPlannerThreads>(active % p.slots != 0, scratch, &partial);
      full_total += full;
      partial_total += partial;
    }
    const int32_t split_from = last_round_split(full_total, partial_total, p.slots, p.ctas);
    const int32_t half = p.slots / 2;
    const uint32_t unused_high = 0xffffffffu << (8 * half);  // slots < 4 * 8 bits: shift < 32
    int32_t base = 0;
    for (int32_t partial = 0; partial < 2; ++partial) {
      for (int32_t start = 0; start < candidates; start += kPlannerThreads) {
        const int32_t index = start + static_cast<int32_t>(threadIdx.x);
        RowTile t{0, 0, 0};
        if (index < candidates) t = row_tile(p, index);
        const int32_t active = __popcll(t.mask);
        const int32_t full = active / p.slots;
        const int32_t count = partial ? (active % p.slots != 0 ? 1 : 0) : full;
        int32_t total = 0;
        const int32_t offset =
            work_list::block_exclusive_scan<kPlannerThreads>(count, scratch, &total);
        uint64_t mask = t.mask;
        for (int32_t skip = partial ? full * p.slots : 0; skip > 0; --skip) mask &= mask - 1;
        for (int32_t g = 0; g < count; ++g) {
          uint32_t heads = 0xffffffffu;
          int32_t used = 0;
          for (; used < p.slots && mask != 0; ++used) {
            const uint32_t h = static_cast<uint32_t>(__ffsll(static_cast<long long>(mask)) - 1);
            mask &= mask - 1;
            heads = (heads & ~(0xffu << (8 * used))) | (h << (8 * used));
          }
          const int32_t group = base + offset + g;
          if (partial) {
            // After the whole groups and the extra halves.
            p.items[group + full_total - split_from] =
                make_int4(t.b, t.m0, static_cast<int32_t>(heads), used);
          } else if (group < split_from) {
            p.items[group] = make_int4(t.b, t.m0, static_cast<int32_t>(heads), used);
          } else {
            const int32_t at = split_from + 2 * (group - split_from);
            p.items[at] = make_int4(t.b, t.m0, static_cast<int32_t>(heads | unused_high), half);
            p.items[at + 1] = make_int4(
                t.b, t.m0, static_cast<int32_t>((heads >> (8 * half)) | unused_high), half);
          }
        }
        base += total;
      }
    }
    if (threadIdx.x == 0) *p.item_count = base + full_total - split_from;
    return;
  }
  // GEMM-O: every in-range row tile is an entry (dispatch must still write Y = C where no head is
  // active); cost = k-blocks it reduces in this call.
  __shared__ int32_t hist[kMaxPlanCost + 2];
  const bool update = p.mode == GemmMode::kOUpdate;
  auto cost = [&](int32_t index) {
    const RowTile t = row_tile(p, index);
    if (!in_range(p, t)) return -1;
    if (p.cache_only) return (p.heads - __popcll(t.mask)) * p.k_blocks_per_head;
    const int32_t heads = update ? p.heads : __popcll(t.mask);
    return heads * p.k_blocks_per_head + p.extra_k_blocks;
  };
  auto emit = [&](int32_t rank, int32_t index) {
    const RowTile t = row_tile(p, index);
    p.items[rank] = make_int4(t.b, t.m0, static_cast<int32_t>(t.mask & 0xffffffffu),
                              static_cast<int32_t>(t.mask >> 32));
  };
  work_list::sort_by_cost_desc<kPlannerThreads, kMaxPlanCost>(candidates, hist, cost, emit,
                                                              p.item_count);
}

}  // namespace

void launch_gemm_planner(const GemmPlanParams& p, cudaStream_t stream) {
  gemm_planner_kernel<<<1, kPlannerThreads, 0, stream>>>(p);
  FLASHOMNI_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashomni::cuda::gemm
