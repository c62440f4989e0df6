// FlashOmni CUDA layer: sparse attention plan — work-item encoding, workspace layout and the
// arguments the planner and the main kernel share (host and device visible, no CuTe).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace flashomni::cuda::attention {

// Tile = symbol block: 128 query rows x 128 keys (spec §1 default; the launcher rejects others).
inline constexpr int kBlockM = 128;
inline constexpr int kBlockN = 128;

// One active (b, h, i) item of the compacted work list. `row` is the linear symbol row index
// (b * heads + h) * q_blocks + i (also the Skv row index), `blocks` the count of kept key blocks
// (cost), `mask_first` whether the first visited key block (the highest kept j) is a partial
// tail block that needs -inf masking.
struct WorkItem {
  int32_t row;
  int32_t blocks_and_flag;  // blocks << 1 | mask_first
};

#if defined(__CUDACC__)
#define FLASHOMNI_ATTN_HD __host__ __device__ __forceinline__
#else
#define FLASHOMNI_ATTN_HD inline
#endif

FLASHOMNI_ATTN_HD WorkItem make_work_item(int32_t row, int32_t blocks, bool mask_first) {
  return WorkItem{row, (blocks << 1) | (mask_first ? 1 : 0)};
}
FLASHOMNI_ATTN_HD int32_t item_blocks(WorkItem w) {
  return w.blocks_and_flag >> 1;
}
FLASHOMNI_ATTN_HD bool item_mask_first(WorkItem w) {
  return (w.blocks_and_flag & 1) != 0;
}

// Problem geometry shared by the planner and the kernel (all runtime values).
struct AttentionGeometry {
  int32_t batch = 0;
  int32_t heads = 0;
  int32_t kv_heads = 0;
  int32_t seqlen_q = 0;                    // uniform batch: the length; varlen: the longest request
  int32_t seqlen_kv = 0;                   // idem
  int32_t q_blocks = 0;                    // ceil(seqlen_q / 128): symbol rows per (b, h)
  int32_t kv_blocks = 0;                   // ceil(seqlen_kv / 128)
  int32_t kv_words = 0;                    // ceil(kv_blocks / 32)
  int32_t q_words = 0;                     // ceil(q_blocks / 32)
  const int32_t* cu_seqlens_q = nullptr;   // device, varlen only
  const int32_t* cu_seqlens_kv = nullptr;  // device, varlen only
  const uint32_t* q_bits = nullptr;        // device; null = dense (every block active)
  const uint32_t* kv_bits = nullptr;

  FLASHOMNI_ATTN_HD bool varlen() const { return cu_seqlens_q != nullptr; }
  FLASHOMNI_ATTN_HD int32_t max_items() const { return batch * heads * q_blocks; }
};

// Workspace: [num_items, next_item counter, 2 pad (int32)][counts int32 x max_items]
// [items WorkItem x max_items]. Size depends only on shapes (callers allocate once per shape).
struct PlanWorkspace {
  int32_t* num_items = nullptr;
  int32_t* next_item = nullptr;  // dynamic scheduler counter, reset to 0 by every plan
  int32_t* counts = nullptr;     // per candidate row: kept key blocks, or -1 when cached
  WorkItem* items = nullptr;
};

inline std::size_t plan_workspace_bytes(int64_t max_items) {
  auto align = [](std::size_t n) { return (n + 255) / 256 * 256; };
  return align(16) + align(static_cast<std::size_t>(max_items) * 4) +
         align(static_cast<std::size_t>(max_items) * sizeof(WorkItem));
}

inline PlanWorkspace carve_plan_workspace(void* base, int64_t max_items) {
  auto align = [](std::size_t n) { return (n + 255) / 256 * 256; };
  char* p = static_cast<char*>(base);
  PlanWorkspace ws;
  ws.num_items = reinterpret_cast<int32_t*>(p);
  ws.next_item = ws.num_items + 1;
  p += align(16);
  ws.counts = reinterpret_cast<int32_t*>(p);
  p += align(static_cast<std::size_t>(max_items) * 4);
  ws.items = reinterpret_cast<WorkItem*>(p);
  return ws;
}

// Window of (b, h) rows the planner sorts together: the active items are listed window by window
// (b, h order) and by kept key blocks, descending, inside a window. CTAs pull items in list order,
// so at any time they work on about one window: its K/V stays in L2 (a window spans about 2
// waves of items, e.g. 2 heads = 17 MB of K/V at N = 16896), while the longest-first order inside
// the window keeps the tail short (modelled: >= 0.92 of perfect balance at N = 4608 against 0.81
// for plain (b, h, i) order).
inline int32_t planner_window_rows(int32_t q_blocks, int32_t ctas) {
  return q_blocks > 0 ? (2 * ctas + q_blocks - 1) / q_blocks : 1;
}

// Enqueues the planner on `stream`: fills ws.items, *ws.num_items and resets *ws.next_item.
// No host synchronisation.
void launch_attention_planner(const AttentionGeometry& geo, const PlanWorkspace& ws,
                              int32_t window_rows, cudaStream_t stream);

}  // namespace flashomni::cuda::attention
