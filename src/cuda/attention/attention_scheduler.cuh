// FlashOmni CUDA layer: sparse attention tile scheduler — persistent CTAs walk the planner's
// cost-sorted work list with a static stride, and each item is decoded into its coordinates.
#pragma once

#include <cstdint>

#include "cuda/attention/attention_plan.h"

namespace flashomni::cuda::attention {

// Everything a role needs to know about one (b, h, i) item.
struct ItemInfo {
  int32_t b, h, i;
  int32_t blocks;       // kept key blocks (0: write O = 0, LSE = -inf)
  bool mask_first;      // first visited key block is the partial tail block
  int32_t batch_index;  // index into the batch mode of the global views (0 in varlen)
  int32_t q_offset;     // first row of the request in the packed q/out (0 in uniform batch)
  int32_t kv_offset;
  int32_t q_len, kv_len;
  int32_t row;  // symbol row index, also the Skv row
};

__device__ __forceinline__ ItemInfo decode_item(const AttentionGeometry& g, WorkItem w) {
  ItemInfo it;
  it.row = w.row;
  it.i = w.row % g.q_blocks;
  const int32_t bh = w.row / g.q_blocks;
  it.h = bh % g.heads;
  it.b = bh / g.heads;
  it.blocks = item_blocks(w);
  it.mask_first = item_mask_first(w);
  if (g.varlen()) {
    it.batch_index = 0;
    it.q_offset = g.cu_seqlens_q[it.b];
    it.q_len = g.cu_seqlens_q[it.b + 1] - it.q_offset;
    it.kv_offset = g.cu_seqlens_kv[it.b];
    it.kv_len = g.cu_seqlens_kv[it.b + 1] - it.kv_offset;
  } else {
    it.batch_index = it.b;
    it.q_offset = 0;
    it.kv_offset = 0;
    it.q_len = g.seqlen_q;
    it.kv_len = g.seqlen_kv;
  }
  return it;
}

// Dynamic persistent scheduler. The producer warp claims items in list order (its first item is
// blockIdx.x, later ones gridDim.x + atomicAdd(next_item, 1), so a CTA takes the next item when it
// is free: greedy list scheduling over the planner's windowed longest-first order) and hands
// each claimed WorkItem to the consumer warpgroups through a 2-slot mbarrier ring in shared
// memory; an item with row < 0 ends the loop.
struct ItemRing {
  WorkItem item[2];
  uint64_t full[2];   // 1 arrival: the producer lane that wrote the slot
  uint64_t empty[2];  // 256 arrivals: every consumer thread read the slot
};

__device__ __forceinline__ WorkItem end_of_work() {
  return WorkItem{-1, 0};
}

// Walks the kept key blocks of one Skv row from the highest to the lowest (so the partial tail
// block, if kept, comes first and only the first iteration masks). Dense mode (no symbols) walks
// all-ones words through the same code.
struct KvBlockIter {
  const uint32_t* row;  // null: dense
  int32_t nkb;          // this request's key-block count; bits at or past it are ignored
  int32_t word;
  uint32_t bits;

  __device__ __forceinline__ KvBlockIter(const uint32_t* row_bits, int32_t kv_blocks)
      : row(row_bits), nkb(kv_blocks), word((kv_blocks + 31) / 32), bits(0) {}

  // Next kept block index, or -1 when done.
  __device__ __forceinline__ int32_t next() {
    while (bits == 0) {
      if (word == 0) return -1;
      --word;
      const int32_t valid = nkb - 32 * word;
      const uint32_t mask = valid >= 32 ? 0xffffffffu : ((1u << valid) - 1u);
      bits = (row != nullptr ? row[word] : 0xffffffffu) & mask;
    }
    const int32_t j = 31 - __clz(bits);
    bits &= ~(1u << j);
    return word * 32 + j;
  }
};

}  // namespace flashomni::cuda::attention
