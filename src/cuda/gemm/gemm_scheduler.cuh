// FlashOmni CUDA layer (GEMM): the tile scheduler — decodes work item k of the persistent loop
// (planner list or dense index), the k-block sequence it reduces, and this CTA's units (whole
// items, then its k-block range of the split tail; see GemmKernelParams). Producer and consumers
// call the same functions, so they agree on every unit and on the pipeline stages it uses.
#pragma once

#include <cstdint>

#include "cuda/gemm/gemm_params.h"

namespace flashomni::cuda::gemm {

struct Tile {
  int32_t b = 0;
  int32_t m0 = 0;       // first row (may be negative / past M: those rows are masked)
  int32_t n0 = 0;       // GEMM-O: first output column
  uint32_t heads = 0;   // GEMM-Q: head of column slot s in byte s
  int32_t slots = 0;    // GEMM-Q: slots in use
  uint64_t active = 0;  // GEMM-O: active heads
  int32_t phase1 = 0;   // k-blocks reduced before the cache is stored (update only)
  int32_t phase2 = 0;   // k-blocks reduced after it (or all of them)
};

__device__ __forceinline__ uint64_t all_heads(int32_t heads) {
  return heads >= 64 ? ~0ull : (1ull << heads) - 1;
}

__device__ __forceinline__ int32_t num_items(const GemmKernelParams& p) {
  if (p.items == nullptr) return p.dense_items;
  const int32_t n = *p.item_count;
  return p.mode == GemmMode::kQ ? n : n * p.n_tiles;
}

__device__ __forceinline__ Tile get_tile(const GemmKernelParams& p, int32_t k) {
  Tile t;
  const int32_t kb_per_head = p.head_dim / kTileK;
  if (p.mode == GemmMode::kQ) {
    if (p.items != nullptr) {
      const int4 w = p.items[k];
      t.b = w.x;
      t.m0 = w.y;
      t.heads = static_cast<uint32_t>(w.z);
      t.slots = w.w;
    } else {
      const int32_t groups = (p.heads + p.slots - 1) / p.slots;
      const int32_t row_tile = k / groups, g = k % groups;
      t.b = row_tile / p.row_tiles;
      t.m0 = (row_tile % p.row_tiles) * kTileM;
      t.heads = 0xffffffffu;
      for (int32_t s = 0; s < p.slots && g * p.slots + s < p.heads; ++s) {
        t.heads =
            (t.heads & ~(0xffu << (8 * s))) | (static_cast<uint32_t>(g * p.slots + s) << (8 * s));
        t.slots = s + 1;
      }
    }
    t.phase2 = p.k_blocks;
    return t;
  }
  const int32_t entry = k / p.n_tiles;
  t.n0 = (k % p.n_tiles) * kTileN;
  if (p.items != nullptr) {
    const int4 w = p.items[entry];
    t.b = w.x;
    t.m0 = w.y;
    t.active =
        (static_cast<uint64_t>(static_cast<uint32_t>(w.w)) << 32) | static_cast<uint32_t>(w.z);
  } else {
    t.b = entry / p.row_tiles;
    t.m0 = (entry % p.row_tiles) * kTileM;
    t.active = all_heads(p.heads);
  }
  const int32_t active = __popcll(t.active);
  t.phase1 = p.mode == GemmMode::kOUpdate ? (p.heads - active) * kb_per_head : 0;
  t.phase2 = p.cache_only ? 0 : active * kb_per_head + p.extra_k_blocks;
  return t;
}

// Calls f(k_col) for k-blocks [kb_begin, kb_end) of the tile's sequence, in pipeline order:
// GEMM-Q all of K; GEMM-O update the cached heads, then the active heads and the extra columns
// (cache only: the cached heads alone); dispatch the active heads and the extra columns.
template <typename F>
__device__ __forceinline__ void for_each_k_block(const GemmKernelParams& p, const Tile& t,
                                                 int32_t kb_begin, int32_t kb_end, F&& f) {
  if (p.mode == GemmMode::kQ) {
    for (int32_t kb = kb_begin; kb < kb_end; ++kb) f(kb * kTileK);
    return;
  }
  const int32_t kb_per_head = p.head_dim / kTileK;
  int32_t index = 0;
  auto emit = [&](int32_t k_col) {
    if (index >= kb_begin && index < kb_end) f(k_col);
    ++index;
  };
  auto heads = [&](uint64_t mask) {
    while (mask != 0 && index < kb_end) {
      const int32_t h = __ffsll(static_cast<long long>(mask)) - 1;
      mask &= mask - 1;
      if (index + kb_per_head <= kb_begin) {  // a whole head before the range
        index += kb_per_head;
        continue;
      }
      for (int32_t s = 0; s < kb_per_head; ++s) emit(h * p.head_dim + s * kTileK);
    }
  };
  if (p.mode == GemmMode::kOUpdate) heads(all_heads(p.heads) & ~t.active);
  if (p.cache_only) return;
  heads(t.active);
  for (int32_t e = 0; e < p.extra_k_blocks && index < kb_end; ++e) {
    emit(p.heads * p.head_dim + e * kTileK);
  }
}

// ---- units: whole items, then the split tail -------------------------------------------------

// One unit of a CTA's work: k-blocks [kb_begin, kb_end) of item `item`. `first`: the unit starts
// the item (k-block 0) and so initialises it with the bias or the cache; `whole`: it is the
// item's only part and stores the tile itself; otherwise the parts meet in the workspace.
struct Unit {
  int32_t item = 0;
  int32_t kb_begin = 0, kb_end = 0;
  bool first = true, whole = true;
};

// The split tail's geometry, the same in every thread of every CTA: items [n_dp, n) whose costs
// (k-blocks, at least 1 so that a dispatch item with nothing to reduce still stores C) span
// [base, base + total), cut into `ctas` ranges.
struct SplitTail {
  int32_t n = 0, n_dp = 0, ctas = 0;
  int64_t base = 0, total = 0;
  __device__ __forceinline__ int64_t begin(int32_t g) const { return base + total * g / ctas; }
};

// Cost of every item when they are uniform (GEMM-Q: all of K; dense GEMM-O: all heads + extra).
__device__ __forceinline__ int32_t uniform_cost(const GemmKernelParams& p) {
  if (p.mode == GemmMode::kQ) return p.k_blocks;
  return max(p.heads * (p.head_dim / kTileK) + p.extra_k_blocks, 1);
}

// Cost of items [0, i). Planned GEMM-O items (entry e, column tile c) share their entry's cost.
__device__ __forceinline__ int64_t item_prefix(const GemmKernelParams& p, int32_t i) {
  if (p.mode == GemmMode::kQ || p.items == nullptr) {
    return static_cast<int64_t>(i) * uniform_cost(p);
  }
  const int32_t e = i / p.n_tiles, c = i % p.n_tiles;
  const int64_t at = static_cast<int64_t>(__ldg(p.entry_prefix + e)) * p.n_tiles;
  if (c == 0) return at;
  return at + static_cast<int64_t>(c) * (__ldg(p.entry_prefix + e + 1) - __ldg(p.entry_prefix + e));
}

// The item of [n_dp, n) whose cost range holds x (base <= x < base + total).
__device__ __forceinline__ int32_t find_item(const GemmKernelParams& p, const SplitTail& s,
                                             int64_t x) {
  if (p.mode == GemmMode::kQ || p.items == nullptr) {
    return static_cast<int32_t>(x / uniform_cost(p));
  }
  // Largest entry whose first item starts at or before x (binary search, ~12 L2 loads).
  int32_t lo = s.n_dp / p.n_tiles, hi = s.n / p.n_tiles - 1;
  while (lo < hi) {
    const int32_t mid = (lo + hi + 1) / 2;
    if (static_cast<int64_t>(__ldg(p.entry_prefix + mid)) * p.n_tiles <= x) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const int64_t at = static_cast<int64_t>(__ldg(p.entry_prefix + lo)) * p.n_tiles;
  const int32_t cost = __ldg(p.entry_prefix + lo + 1) - __ldg(p.entry_prefix + lo);
  const int32_t c = min(static_cast<int32_t>((x - at) / cost), p.n_tiles - 1);
  return max(lo * p.n_tiles + c, s.n_dp);
}

__device__ __forceinline__ SplitTail split_tail(const GemmKernelParams& p) {
  SplitTail s;
  s.n = num_items(p);
  const int32_t grid = static_cast<int32_t>(gridDim.x);
  if (p.partials == nullptr || p.mode == GemmMode::kOUpdate) {
    s.n_dp = s.n;
    return s;
  }
  s.n_dp = s.n >= 2 * grid ? s.n - s.n % grid - grid : 0;
  s.base = item_prefix(p, s.n_dp);
  s.total = item_prefix(p, s.n) - s.base;
  // As many ranges as items at least (short items then run whole, one per CTA), more when the
  // tail is long enough that every range keeps kMinSplitKBlocks.
  const int64_t ctas = max(s.total / kMinSplitKBlocks, static_cast<int64_t>(s.n - s.n_dp));
  s.ctas = ctas < 1 ? 1 : (ctas > grid ? grid : static_cast<int32_t>(ctas));
  return s;
}

// This CTA's walk over its units: its whole items round robin, then the items its range of the
// split tail touches (a range that covers an item entirely runs it whole). One cursor per thread,
// advanced by next_unit, so the unit body is compiled once (a callback called from the two loops
// doubled the consumer code: 460 bytes of spills against 136).
struct UnitCursor {
  int32_t k = 0;  // next whole item, then next split item
  int32_t n_dp = 0, n = 0;
  int64_t begin = 0, end = 0;  // this CTA's cost range of the split tail (empty: none)
  bool split = false;
};

__device__ __forceinline__ UnitCursor unit_cursor(const GemmKernelParams& p) {
  const SplitTail s = split_tail(p);
  const int32_t g = static_cast<int32_t>(blockIdx.x);
  UnitCursor c;
  c.k = g;
  c.n_dp = s.n_dp;
  c.n = s.n;
  if (s.n_dp < s.n && g < s.ctas) {
    c.begin = s.begin(g);
    c.end = s.begin(g + 1);
  }
  return c;
}

__device__ __forceinline__ bool next_unit(const GemmKernelParams& p, UnitCursor& c, Tile& t,
                                          Unit& u) {
  if (!c.split) {
    if (c.k < c.n_dp) {
      t = get_tile(p, c.k);
      u = Unit{c.k, 0, t.phase1 + t.phase2, true, true};
      c.k += gridDim.x;
      return true;
    }
    c.split = true;
    if (c.begin == c.end) return false;
    SplitTail s;
    s.n = c.n;
    s.n_dp = c.n_dp;
    c.k = find_item(p, s, c.begin);
  }
  if (c.begin == c.end || c.k >= c.n) return false;
  const int64_t c0 = item_prefix(p, c.k);
  if (c0 >= c.end) return false;
  const int64_t c1 = item_prefix(p, c.k + 1);
  t = get_tile(p, c.k);
  const int32_t kb = t.phase2;  // not update: phase1 == 0
  // Offsets into the item's k-blocks (its cost may exceed them by 1: an empty dispatch item).
  const int64_t from = c.begin > c0 ? c.begin - c0 : 0, to = c.end - c0;
  u.item = c.k;
  u.kb_begin = static_cast<int32_t>(from < kb ? from : kb);
  u.kb_end = static_cast<int32_t>(to < kb ? to : kb);
  u.first = c.begin <= c0;
  u.whole = c.begin <= c0 && c.end >= c1;
  ++c.k;
  return true;
}

}  // namespace flashomni::cuda::gemm
