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

// Candidate `index`'s query block, and its batch entry and first row in t (mask left 0).
__device__ __forceinline__ int32_t row_tile_rows(const GemmPlanParams& p, int32_t index,
                                                 RowTile& t) {
  t = RowTile{index / p.row_tiles, 0, 0};
  const int32_t local = index % p.row_tiles;
  const int32_t block = p.first_block + local / p.chunks_per_block;
  t.m0 = block * p.block_q + (local % p.chunks_per_block) * kTileM - p.row_offset;
  return block;
}

__device__ __forceinline__ RowTile row_tile(const GemmPlanParams& p, int32_t index) {
  RowTile t;
  const int32_t block = row_tile_rows(p, index, t);
  if (block >= p.symbols.shape.q_blocks || t.m0 + kTileM <= 0 || t.m0 >= p.rows) return t;
  for (int32_t h = 0; h < p.heads; ++h) {
    if (query_active(p.symbols, t.b, h, block)) t.mask |= 1ull << h;
  }
  return t;
}

__device__ __forceinline__ bool in_range(const GemmPlanParams& p, const RowTile& t) {
  return t.m0 + kTileM > 0 && t.m0 < p.rows;
}

// One GEMM-Q item of up to `slots` heads of row tile t (byte s of `heads`: the head of slot s).
__device__ __forceinline__ int4 q_item(const RowTile& t, uint32_t heads, int32_t used) {
  return make_int4(t.b, t.m0, static_cast<int32_t>(heads), used);
}

// Row tile t's whole groups (all `slots` heads; partial = false), those from split_from on as two
// half-width items each (last_round_split), or its at most one partial group (partial = true),
// placed after the whole groups and the extra halves (`full`: the whole items' count). `first` is
// the index of its first group of that kind in the groups' order.
__device__ __forceinline__ void emit_tile_groups(const GemmPlanParams& p, const RowTile& t,
                                                 bool partial, int32_t first, int32_t full,
                                                 int32_t split_from) {
  const int32_t half = p.slots / 2;
  const uint32_t unused_high = 0xffffffffu << (8 * half);  // slots < 4 * 8 bits: shift < 32
  const int32_t active = __popcll(t.mask);
  const int32_t whole = active / p.slots;
  const int32_t count = partial ? (active % p.slots != 0 ? 1 : 0) : whole;
  uint64_t mask = t.mask;
  for (int32_t skip = partial ? whole * p.slots : 0; skip > 0; --skip) mask &= mask - 1;
  for (int32_t g = 0; g < count; ++g) {
    uint32_t heads = 0xffffffffu;
    int32_t used = 0;
    for (; used < p.slots && mask != 0; ++used) {
      const uint32_t h = static_cast<uint32_t>(__ffsll(static_cast<long long>(mask)) - 1);
      mask &= mask - 1;
      heads = (heads & ~(0xffu << (8 * used))) | (h << (8 * used));
    }
    const int32_t group = first + g;
    if (partial) {
      p.items[group + full - split_from] = q_item(t, heads, used);
    } else if (group < split_from) {
      p.items[group] = q_item(t, heads, used);
    } else {
      const int32_t at = split_from + 2 * (group - split_from);
      p.items[at] = q_item(t, heads | unused_high, half);
      p.items[at + 1] = q_item(t, (heads >> (8 * half)) | unused_high, half);
    }
  }
}

// The groups of one kind (emit_tile_groups) of every row tile, row-tile major, starting at `base`
// of the groups' order, one chunk of kPlannerThreads candidates at a time. Returns how many
// groups it emitted.
__device__ int32_t emit_groups(const GemmPlanParams& p, int32_t candidates, bool partial,
                               int32_t base, int32_t full, int32_t split_from, int32_t* scratch) {
  int32_t emitted = 0;
  for (int32_t start = 0; start < candidates; start += kPlannerThreads) {
    const int32_t index = start + static_cast<int32_t>(threadIdx.x);
    RowTile t{0, 0, 0};
    if (index < candidates) t = row_tile(p, index);
    const int32_t active = __popcll(t.mask);
    const int32_t count = partial ? (active % p.slots != 0 ? 1 : 0) : active / p.slots;
    int32_t total = 0;
    const int32_t offset = work_list::block_exclusive_scan<kPlannerThreads>(count, scratch, &total);
    emit_tile_groups(p, t, partial, base + emitted + offset, full, split_from);
    emitted += total;
  }
  return emitted;
}

// Whole and partial group counts packed for one scan: a chunk holds at most 1024 x 64 = 2^16
// whole groups (below bit 20) and 1024 partial ones (1024 << 20 = 2^30: no sign bit).
inline constexpr int kPartialShift = 20;

// GEMM-Q: whole groups (all `slots` heads) first, then the at most one partial group per row tile
// (half the wgmma work or less), so the short items fill the last round; whole groups from
// split_from on are emitted as two half-width items each (last_round_split).
// Up to kPlannerThreads candidates (1024 row tiles over the batch, 131K rows) take one pass: each
// thread reads its row tile's symbols once and one scan gives both kinds' offsets. The chunked
// passes read them three times and scan four times: a clock64 trace of the planner at M = 4608
// (36 candidates, 24 heads) spent 4.5k cycles in the counting pass and 7.1-7.8k in the two
// emitting ones, serial with the GEMM. One pass: emits 2.6-3.9k, planned gemm_q 0.4-2.3 % faster
// on the H100 (gemm_notes.md item 30).
__device__ void plan_q_groups(const GemmPlanParams& p, int32_t candidates) {
  __shared__ int32_t scratch[kPlannerThreads / 32 + 1];
  if (candidates <= kPlannerThreads) {
    const int32_t index = static_cast<int32_t>(threadIdx.x);
    RowTile t{0, 0, 0};
    if (index < candidates) t = row_tile(p, index);
    const int32_t active = __popcll(t.mask);
    const int32_t packed = active / p.slots | (active % p.slots != 0 ? 1 : 0) << kPartialShift;
    int32_t total = 0;
    const int32_t offset =
        work_list::block_exclusive_scan<kPlannerThreads>(packed, scratch, &total);
    const int32_t low = (1 << kPartialShift) - 1;
    const int32_t full_total = total & low, partial_total = total >> kPartialShift;
    const int32_t split_from = last_round_split(full_total, partial_total, p.slots, p.ctas);
    emit_tile_groups(p, t, false, offset & low, full_total, split_from);
    emit_tile_groups(p, t, true, full_total + (offset >> kPartialShift), full_total, split_from);
    if (threadIdx.x == 0) *p.item_count = 2 * full_total - split_from + partial_total;
    return;
  }
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
  emit_groups(p, candidates, false, 0, full_total, split_from, scratch);
  emit_groups(p, candidates, true, full_total, full_total, split_from, scratch);
  if (threadIdx.x == 0) *p.item_count = 2 * full_total - split_from + partial_total;
}

// The head left over in row tile t's partial group (slots = 2: its highest active head, since
// groups take heads lowest first), or -1 when its active count is even.
__device__ __forceinline__ int32_t leftover_head(const RowTile& t) {
  return __popcll(t.mask) % 2 != 0 ? 63 - __clzll(static_cast<long long>(t.mask)) : -1;
}

// GEMM-Q with 128-column heads (slots = 2; GemmPlanParams::pair_heads): as plan_q_groups, but the
// one-head partial groups of the same head are paired across row tiles, in row-tile order, into
// tall items (kTallItem: two row tiles x one head, 48 KB a k-block like a whole group, where a
// one-head item moves 32 KB for half the FLOPs and runs at ~0.7 of the tensor rate on the H100).
// A head's odd partial stays a one-head item. Order: whole groups, tall items, then the one-head
// items; a last round of whole or tall items runs as halves where they fit (a tall item's halves
// are its two one-head items). Deterministic: ranks come from a per-chunk warp scan, not atomics.
__device__ void plan_q_paired(const GemmPlanParams& p, int32_t candidates) {
  constexpr int kWarps = kPlannerThreads / 32;
  __shared__ int32_t scratch[kPlannerThreads / 32 + 1];
  __shared__ int32_t count[kMaxHeads], first[kMaxHeads], tall_base[kMaxHeads],
      single_base[kMaxHeads], seen[kMaxHeads], totals[3];
  __shared__ int32_t warp_rank[kWarps][kMaxHeads];
  __shared__ int32_t order[kMaxPairCandidates];  // partial row tiles, by head then row tile
  const int32_t tid = static_cast<int32_t>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  if (tid < kMaxHeads) count[tid] = 0;
  __syncthreads();
  int32_t full_total = 0;
  for (int32_t start = 0; start < candidates; start += kPlannerThreads) {
    const int32_t index = start + tid;
    RowTile t{0, 0, 0};
    if (index < candidates) t = row_tile(p, index);
    int32_t full = 0;
    work_list::block_exclusive_scan<kPlannerThreads>(__popcll(t.mask) / 2, scratch, &full);
    full_total += full;
    const int32_t h = leftover_head(t);
    if (h >= 0) atomicAdd(&count[h], 1);  // a count: order-independent
  }
  __syncthreads();
  if (tid == 0) {
    int32_t partial = 0, tall = 0, single = 0;
    for (int32_t h = 0; h < p.heads; ++h) {
      first[h] = partial;
      tall_base[h] = tall;
      single_base[h] = single;
      seen[h] = 0;
      partial += count[h];
      tall += count[h] / 2;
      single += count[h] % 2;
    }
    totals[0] = partial;
    totals[1] = tall;
    totals[2] = single;
  }
  __syncthreads();
  // Rank of each partial row tile among those of its head, in row-tile order.
  for (int32_t start = 0; start < candidates; start += kPlannerThreads) {
    const int32_t index = start + tid;
    for (int32_t i = tid; i < kWarps * kMaxHeads; i += kPlannerThreads) {
      warp_rank[i / kMaxHeads][i % kMaxHeads] = 0;
    }
    __syncthreads();
    const int32_t h = index < candidates ? leftover_head(row_tile(p, index)) : -1;
    const uint32_t peers = __match_any_sync(0xffffffffu, h);
    const int32_t in_warp = __popc(peers & ((1u << lane) - 1u));
    if (h >= 0 && in_warp == 0) warp_rank[warp][h] = __popc(peers);
    __syncthreads();
    if (tid < p.heads) {
      int32_t run = seen[tid];
      for (int32_t w = 0; w < kWarps; ++w) {
        const int32_t c = warp_rank[w][tid];
        warp_rank[w][tid] = run;
        run += c;
      }
      seen[tid] = run;
    }
    __syncthreads();
    if (h >= 0) order[first[h] + warp_rank[warp][h] + in_warp] = index;
    __syncthreads();
  }
  const int32_t tall_total = totals[1], single_total = totals[2];
  const int32_t full = full_total + tall_total;  // whole-cost items: groups, then tall pairs
  const int32_t split_from = last_round_split(full, single_total, 2, p.ctas);
  emit_groups(p, candidates, false, 0, full, split_from, scratch);
  for (int32_t e = tid; e < totals[0]; e += kPlannerThreads) {
    int32_t h = 0;
    while (e >= first[h] + count[h]) ++h;
    const int32_t r = e - first[h];
    if (r % 2 != 0) continue;  // the second of a pair: emitted with the first
    // Only the rows: the masks were read in the passes above.
    RowTile a, b;
    row_tile_rows(p, order[e], a);
    const uint32_t head = 0xffffff00u | static_cast<uint32_t>(h);
    if (r + 1 == count[h]) {  // a head's odd one out
      p.items[2 * full - split_from + single_base[h]] = q_item(a, head, 1);
      continue;
    }
    row_tile_rows(p, order[e + 1], b);
    const int32_t item = full_total + tall_base[h] + r / 2;
    if (item < split_from) {
      p.items[item] = make_int4(a.b, a.m0, b.m0, kTallItem | b.b << 8 | h);
    } else {
      const int32_t at = split_from + 2 * (item - split_from);
      p.items[at] = q_item(a, head, 1);
      p.items[at + 1] = q_item(b, head, 1);
    }
  }
  if (tid == 0) *p.item_count = 2 * full - split_from + single_total;
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
    if (p.pair_heads && candidates <= kMaxPairCandidates) {
      plan_q_paired(p, candidates);
    } else {
      plan_q_groups(p, candidates);
    }
    return;
  }
  // GEMM-O: every in-range row tile is an entry (dispatch must still write Y = C where no head is
  // active); cost = k-blocks it reduces in this call.
  __shared__ int32_t hist[kMaxPlanCost + 2];
  const bool update = p.mode == GemmMode::kOUpdate;
  // Up to kPlannerThreads candidates, candidate i is thread i's in both of the sort's passes, so
  // its row tile's symbols are read once, not three times (twice for its cost, once to emit it).
  const bool one_chunk = candidates <= kPlannerThreads;
  const int32_t tid = static_cast<int32_t>(threadIdx.x);
  RowTile mine{0, 0, 0};
  if (one_chunk && tid < candidates) mine = row_tile(p, tid);
  auto tile = [&](int32_t index) { return one_chunk ? mine : row_tile(p, index); };
  auto cost = [&](int32_t index) {
    const RowTile t = tile(index);
    if (!in_range(p, t)) return -1;
    if (p.cache_only) return (p.heads - __popcll(t.mask)) * p.k_blocks_per_head;
    const int32_t heads = update ? p.heads : __popcll(t.mask);
    return heads * p.k_blocks_per_head + p.extra_k_blocks;
  };
  auto emit = [&](int32_t rank, int32_t index) {
    const RowTile t = tile(index);
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
