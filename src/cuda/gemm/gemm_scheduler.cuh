// FlashOmni CUDA layer (GEMM): the tile scheduler — decodes work item k of the persistent loop
// (planner list or dense index) and the k-block sequence it reduces. Producer and consumers call
// the same functions, so they agree on every tile and on the number of pipeline stages it uses.
#pragma once

#include <cstdint>

#include "cuda/common/hopper.cuh"
#include "cuda/gemm/gemm_params.h"

namespace flashomni::cuda::gemm {

struct Tile {
  int32_t b = 0;
  int32_t m0 = 0;            // first row (may be negative / past M: those rows are masked)
  int32_t n0 = 0;            // GEMM-O: first output column
  int32_t n_width = kTileN;  // GEMM-O: output columns, 256 or 128 (a half of the last round)
  uint32_t heads = 0;        // GEMM-Q: head of column slot s in byte s
  int32_t slots = 0;         // GEMM-Q: slots in use
  // GEMM-Q tall item (kTallItem): warpgroup 1's row tile (b2, m0_2); warpgroup 0 takes (b, m0).
  bool tall = false;
  int32_t b2 = 0, m0_2 = 0;
  uint64_t active = 0;  // GEMM-O: active heads
  int32_t phase1 = 0;   // k-blocks reduced before the cache is stored (update only)
  int32_t phase2 = 0;   // k-blocks reduced after it (or all of them; a part's range)
  // Last-round K split (split_tile): this unit reduces k-blocks [k_begin, k_begin + phase2) of
  // the tile's sequence. `split` packs ((flag index + 1) << 4 | part << 2 | parts - 1), or is 0
  // when the tile is not split. Part 0 owns the tile: it waits for the other parts' partials,
  // adds them and stores; the others store an fp32 partial and count it in the flag; idle units
  // do nothing. One packed register: the consumers keep it live across the mainloop, where 4
  // separate fields pushed ptxas (13.0) past the consumers' 232-register budget (spills, serialised
  // wgmma).
  int32_t k_begin = 0;
  int32_t split = 0;
  bool idle = false;
};

__device__ __forceinline__ int32_t split_flag(int32_t code) {
  return (code >> 4) - 1;
}
__device__ __forceinline__ int32_t split_part(int32_t code) {
  return (code >> 2) & 3;
}
__device__ __forceinline__ bool split_partial(int32_t code) {
  return split_part(code) > 0;
}
__device__ __forceinline__ int32_t split_parts(int32_t code) {
  return (code & 3) + 1;
}
static_assert(kMaxSplitK <= 4, "split codes hold a part in 2 bits");
// A unit of the pair K split (GemmKernelParams::pair_split): no flag (a K-split code's flag
// field is >= 1) and part 0, so split_partial is false and the producer stages its bias.
inline constexpr int32_t kPairSplitCode = 3;
__device__ __forceinline__ bool pair_split(int32_t code) {
  return code == kPairSplitCode;
}
// Warpgroup 1 - r of the pair's CTA rank r (hopper::cluster_ctarank) sends its fragment to the
// peer, whose warpgroup 1 - r keeps those 64 rows.
__device__ __forceinline__ bool pair_sender(int32_t code, int32_t warpgroup) {
  return pair_split(code) && warpgroup != static_cast<int32_t>(hopper::cluster_ctarank());
}

// GemmKernelParams::bias_staged: tile t starts from a bias the producer staged (GEMM-Q and
// GEMM-O update; not a K split's non-owner part, which starts from zero, nor dispatch, whose
// cache holds it). Producer and consumers walk the bias slots by this one rule.
__device__ __forceinline__ bool bias_staged_tile(const GemmKernelParams& p, const Tile& t) {
  return p.bias_staged && p.mode != GemmMode::kODispatch && !split_partial(t.split);
}
// Bias values a tile uses, in tile-column order: its head slots' (GEMM-Q) or its columns inside N
// (none for the second half of a last column tile narrower than 128: N = 320's half at 384).
__device__ __forceinline__ int32_t bias_cols(const GemmKernelParams& p, const Tile& t) {
  return p.mode == GemmMode::kQ ? t.slots * p.head_dim : max(0, min(t.n_width, p.cols - t.n0));
}

__device__ __forceinline__ uint64_t all_heads(int32_t heads) {
  return heads >= 64 ? ~0ull : (1ull << heads) - 1;
}

// The persistent loop's item space. GEMM-Q: the planner's list (its last round already split in
// halves, last_round_split) or the dense index. GEMM-O: row entries x column tiles, where the
// items from split_from() on are the 128-column halves of tiles split_from(), split_from() + 1,
// ... (the same last-round rule as GEMM-Q, with this launch's grid; M = 4608, N = 3072: 432
// tiles = 3 rounds + 36 on 132 CTAs, whose 72 halves end the 4th round at about half a tile).
// With the K split (p.split_k: GEMM-Q and GEMM-O dispatch with long tiles; no halves then), the
// last round's tiles split_from(), ... each become k_parts() consecutive units instead
// (last_round_k_parts, split_tile).
// Two registers, as before the split: the consumers keep the list live across every mainloop.
struct ItemList {
  int32_t count = 0;
  int32_t packed = 0;  // split_from | (k_parts - 1) << 28
  __device__ __forceinline__ int32_t split_from() const { return packed & 0x0fffffff; }
  // > 1: the K split from split_from on; 1: GEMM-O halves from split_from on (if any)
  __device__ __forceinline__ int32_t k_parts() const { return (packed >> 28) + 1; }
};

__device__ __forceinline__ ItemList item_list(const GemmKernelParams& p) {
  ItemList list;
  const int32_t ctas = static_cast<int32_t>(gridDim.x);
  int32_t tiles = 0;
  if (p.mode == GemmMode::kQ) {
    tiles = p.items == nullptr ? p.dense_items : *p.item_count;
  } else {
    tiles = p.items == nullptr ? p.dense_items : *p.item_count * p.n_tiles;
  }
  list.count = list.packed = tiles;
  if (p.split_k && p.mode != GemmMode::kOUpdate) {
    const int32_t parts = last_round_k_parts(tiles, ctas);
    if (parts > 1) {
      const int32_t from = tiles - tiles % ctas;
      list.packed = from | (parts - 1) << 28;
      list.count = tiles + (tiles - from) * (parts - 1);
    }
    return list;
  }
  if (p.mode == GemmMode::kQ) return list;  // halves, if any, are in the list already
  list.packed = last_round_split(tiles, 0, 2, ctas);
  list.count = tiles + (tiles - list.packed);
  return list;
}

// Part `part` of split tile `split` whose sequence has t.phase2 k-blocks: the tile runs in
// e = min(parts, phase2 / kMinSplitKBlocks) (at least 1) equal ranges; parts from e on are idle.
__device__ __forceinline__ void split_tile(Tile& t, int32_t split, int32_t part, int32_t parts) {
  const int32_t total = t.phase2;
  const int32_t e = max(1, min(parts, total / kMinSplitKBlocks));
  if (part >= e) {
    t.idle = true;
    t.phase2 = 0;
    return;
  }
  if (e == 1) return;  // too short to split: part 0 runs it whole
  t.k_begin = total * part / e;
  t.phase2 = total * (part + 1) / e - t.k_begin;
  t.split = (split + 1) << 4 | part << 2 | (e - 1);
}

// The units of split tile s are items from + s * parts + j, j < parts, all in the round that
// starts at `from`. Part 0 (the owner, which waits) must run on the highest-numbered CTA of them:
// CTAs are dispatched in index order, so its other parts are then resident before it, whatever
// else holds SMs (no deadlock). round_item's snake gives item j a rising CTA in even rounds and a
// falling one in odd rounds, hence part = parts - 1 - j or j; part q of the owner's item k is
// item k - q or k + q (split_part_item).
__device__ __forceinline__ bool odd_round(const GemmKernelParams& p, int32_t k) {
  return p.grid_div.div(k) & 1;
}
__device__ __forceinline__ int32_t split_part_item(const GemmKernelParams& p, int32_t k,
                                                   int32_t q) {
  return odd_round(p, k) ? k + q : k - q;
}

// This CTA's item of round r. The list runs longest first (planner) and the CTAs take one item
// per round in snake order (round 0: CTA c gets item c; round 1: item 2G - 1 - c; ...), so a CTA
// that drew a long item in one round draws a short one in the next, where plain round robin
// would give it the long ones every round. Items increase with r for every CTA: the first item
// past the list ends the CTA's work.
__device__ __forceinline__ int32_t round_item(int32_t r) {
  const int32_t g = static_cast<int32_t>(gridDim.x), c = static_cast<int32_t>(blockIdx.x);
  return r * g + ((r & 1) ? g - 1 - c : c);
}

// The CTA that runs item k (round_item inverted). A K-split part stores its partial in the slot
// of its CTA, so the owner finds part q's (split_part_item) from the index alone.
__device__ __forceinline__ int32_t item_cta(const GemmKernelParams& p, int32_t k) {
  const int32_t g = static_cast<int32_t>(gridDim.x), r = p.grid_div.div(k), pos = k - r * g;
  return (r & 1) ? g - 1 - pos : pos;
}
// The item after k (k's round is k / G): no round counter stays live across the tile, which
// cost the consumers a register spill.
__device__ __forceinline__ int32_t next_round_item(const GemmKernelParams& p, int32_t k) {
  return round_item(p.grid_div.div(k) + 1);
}

__device__ __forceinline__ Tile get_tile(const GemmKernelParams& p, const ItemList& list,
                                         int32_t k) {
  Tile t;
  int32_t split = -1, part = 0;
  const int32_t from = list.split_from(), parts = list.k_parts();
  if (parts > 1 && k >= from) {
    split = (k - from) / parts;
    part = (k - from) % parts;
    if (!odd_round(p, from)) part = parts - 1 - part;  // part 0 on the highest CTA (split_tile)
    k = from + split;
  }
  const int32_t kb_per_head = p.head_dim / kTileK;
  if (p.mode == GemmMode::kQ) {
    if (p.items != nullptr) {
      const int4 w = p.items[k];
      t.b = w.x;
      t.m0 = w.y;
      if (w.w < 0) {  // kTallItem
        t.tall = true;
        t.b2 = (w.w >> 8) & 0x7fffff;
        t.m0_2 = w.z;
        t.heads = 0xffffff00u | static_cast<uint32_t>(w.w & 0xff);
        t.slots = 1;
      } else {
        t.heads = static_cast<uint32_t>(w.z);
        t.slots = w.w;
      }
    } else {
      // Items from split_from on are the halves of groups split_from, split_from + 1, ...
      // (last_round_split; only when every group is whole).
      // With pair_split they are both K halves of whole groups instead.
      int32_t group = k, first = 0, count = p.slots;
      if (k >= p.split_from) {
        const int32_t j = k - p.split_from;
        group = p.split_from + j / 2;
        if (p.pair_split) {
          t.split = kPairSplitCode;
        } else {
          count = p.slots / 2;
          first = (j % 2) * count;
        }
      }
      const int32_t row_tile = p.groups_div.div(group);
      const int32_t head0 = (group - row_tile * p.groups_div.d) * p.slots + first;
      t.b = p.row_tiles_div.div(row_tile);
      t.m0 = (row_tile - t.b * p.row_tiles) * kTileM;
      t.heads = 0xffffffffu;
      for (int32_t s = 0; s < count && head0 + s < p.heads; ++s) {
        t.heads = (t.heads & ~(0xffu << (8 * s))) | (static_cast<uint32_t>(head0 + s) << (8 * s));
        t.slots = s + 1;
      }
    }
    t.phase2 = p.k_blocks;
    if (pair_split(t.split)) {  // the launcher keeps k_blocks even
      t.phase2 = p.k_blocks / 2;
      t.k_begin = static_cast<int32_t>(hopper::cluster_ctarank()) * t.phase2;
    }
    if (split >= 0) split_tile(t, split, part, parts);
    return t;
  }
  int32_t tile = k;
  if (parts == 1 && k >= from) {
    const int32_t j = k - from;
    tile = from + j / 2;
    t.n_width = kTileN / 2;
    t.n0 = (j % 2) * (kTileN / 2);
  }
  const int32_t entry = p.n_tiles_div.div(tile);
  t.n0 += (tile - entry * p.n_tiles) * kTileN;
  if (p.items != nullptr) {
    const int4 w = p.items[entry];
    t.b = w.x;
    t.m0 = w.y;
    t.active =
        (static_cast<uint64_t>(static_cast<uint32_t>(w.w)) << 32) | static_cast<uint32_t>(w.z);
  } else {
    t.b = p.row_tiles_div.div(entry);
    t.m0 = (entry - t.b * p.row_tiles) * kTileM;
    t.active = all_heads(p.heads);
  }
  const int32_t active = __popcll(t.active);
  t.phase1 = p.mode == GemmMode::kOUpdate ? (p.heads - active) * kb_per_head : 0;
  t.phase2 = p.cache_only ? 0 : active * kb_per_head + p.extra_k_blocks;
  if (split >= 0) split_tile(t, split, part, parts);
  return t;
}

// Calls f(k_col) for the k-blocks [k_begin, k_begin + phase1 + phase2) of the tile's sequence, in
// pipeline order: GEMM-Q all of K; GEMM-O update the cached heads, then the active heads and the
// extra columns (cache only: the cached heads alone); dispatch the active heads and the extra
// columns. Only a K-split part starts past 0.
template <typename F>
__device__ __forceinline__ void for_each_k_block(const GemmKernelParams& p, const Tile& t, F&& f) {
  const int32_t begin = t.k_begin, end = t.k_begin + t.phase1 + t.phase2;
  if (p.mode == GemmMode::kQ) {
    for (int32_t kb = begin; kb < end; ++kb) f(kb * kTileK);
    return;
  }
  const int32_t kb_per_head = p.head_dim / kTileK;
  int32_t index = 0;  // position in the sequence
  auto heads = [&](uint64_t mask) {
    while (mask != 0 && index < end) {
      const int32_t h = __ffsll(static_cast<long long>(mask)) - 1;
      mask &= mask - 1;
      for (int32_t s = 0; s < kb_per_head; ++s, ++index) {
        if (index >= begin && index < end) f(h * p.head_dim + s * kTileK);
      }
    }
  };
  if (p.mode == GemmMode::kOUpdate) heads(all_heads(p.heads) & ~t.active);
  if (p.cache_only) return;
  heads(t.active);
  for (int32_t e = max(begin - index, 0); e < p.extra_k_blocks && index + e < end; ++e) {
    f(p.heads * p.head_dim + e * kTileK);
  }
}

}  // namespace flashomni::cuda::gemm
