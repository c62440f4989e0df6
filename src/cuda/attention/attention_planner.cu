// FlashOmni CUDA layer: sparse attention planner — one small kernel turning the symbols into the
// compacted, cost-sorted work list the persistent attention kernel walks (spec §2, plan-then-run).
#include <cuda_runtime.h>

#include "cuda/attention/attention_plan.h"
#include "cuda/common/work_list.cuh"
#include "cuda/runtime.h"

namespace flashomni::cuda::attention {
namespace {

// One CTA per window of (b, h) rows (about 2 waves of items, e.g. 264): windows plan in parallel.
constexpr int kPlannerThreads = 512;
// Histogram buckets for the counting sort. Counts above kMaxBins - 1 share the top bucket: the
// order among such items (all >= 4095 key blocks, i.e. >= 524K keys) no longer matters for LPT.
constexpr int kMaxBins = 4096;

__device__ __forceinline__ int32_t request_len(const int32_t* cu, int32_t b, int32_t uniform) {
  return cu != nullptr ? cu[b + 1] - cu[b] : uniform;
}

// Kept key blocks of candidate row `idx`, or -1 when the (b, h, i) is cached or padding.
__device__ __forceinline__ int32_t row_count(const AttentionGeometry& g, int32_t idx) {
  const int32_t i = idx % g.q_blocks;
  const int32_t bh = idx / g.q_blocks;
  const int32_t b = bh / g.heads;
  const int32_t h = bh % g.heads;
  const int32_t q_len = request_len(g.cu_seqlens_q, b, g.seqlen_q);
  const int32_t kv_len = request_len(g.cu_seqlens_kv, b, g.seqlen_kv);
  const int32_t nqb = (q_len + kBlockM - 1) / kBlockM;
  const int32_t nkb = (kv_len + kBlockN - 1) / kBlockN;
  if (i >= nqb) return -1;
  if (g.q_bits != nullptr) {
    const uint32_t word = g.q_bits[(static_cast<int64_t>(b) * g.heads + h) * g.q_words + i / 32];
    if (((word >> (i % 32)) & 1u) == 0) return -1;
  }
  if (g.kv_bits == nullptr) return nkb;
  const uint32_t* row = g.kv_bits + static_cast<int64_t>(idx) * g.kv_words;
  int32_t count = 0;
  for (int32_t w = 0; w < g.kv_words; ++w) {
    const int32_t valid = nkb - 32 * w;
    const uint32_t mask = valid >= 32 ? 0xffffffffu : (valid <= 0 ? 0u : ((1u << valid) - 1u));
    count += __popc(__ldg(row + w) & mask);
  }
  return count;
}

// Active query blocks of symbol row r = b * heads + h (the same definition as row_count >= 0).
__device__ __forceinline__ int32_t row_active_queries(const AttentionGeometry& g, int32_t r) {
  const int32_t b = r / g.heads;
  const int32_t q_len = request_len(g.cu_seqlens_q, b, g.seqlen_q);
  const int32_t nqb = min((q_len + kBlockM - 1) / kBlockM, g.q_blocks);
  if (g.q_bits == nullptr) return nqb;
  int32_t n = 0;
  for (int32_t w = 0; w < g.q_words; ++w) {
    const int32_t valid = nqb - 32 * w;
    const uint32_t mask = valid >= 32 ? 0xffffffffu : (valid <= 0 ? 0u : ((1u << valid) - 1u));
    n += __popc(__ldg(g.q_bits + static_cast<int64_t>(r) * g.q_words + w) & mask);
  }
  return n;
}

// CTA w plans window w: rows [w * window_rows, ...). Its first list slot is the number of active
// items in earlier rows, counted from the Sq words alone, so windows need no inter-CTA ordering.
// The sort itself is work_list's counting sort, step by step: the windows (one CTA each, where
// work_list::sort_by_cost_desc is one CTA for the whole list) give each CTA a slot base, and the
// costs are memoised in ws.counts between the passes (a row's cost reads its kv_words Skv words).
// One CTA looping over all the windows took 12-100 us at N = 4608-16896 (H100), one per window
// 4-5.5 us.
__global__ void __launch_bounds__(kPlannerThreads)
    attention_planner_kernel(AttentionGeometry geo, PlanWorkspace ws, int32_t window_rows) {
  __shared__ int32_t hist[kMaxBins];
  __shared__ int32_t scratch[kPlannerThreads / 32 + 1];
  const int bins = min(geo.kv_blocks + 1, kMaxBins);
  const int32_t rows = geo.batch * geo.heads;
  const int32_t r0 = static_cast<int32_t>(blockIdx.x) * window_rows;
  const int32_t lo = r0 * geo.q_blocks;
  const int32_t hi = min(rows, r0 + window_rows) * geo.q_blocks;

  int32_t earlier = 0;
  for (int32_t r = threadIdx.x; r < r0; r += kPlannerThreads) earlier += row_active_queries(geo, r);
  int32_t base_slot = 0;
  work_list::block_exclusive_scan<kPlannerThreads>(earlier, scratch, &base_slot);

  // Pass 1: cost of every candidate of the window (kept key blocks, -1 when cached), histogram.
  work_list::cost_histogram<kPlannerThreads>(hi - lo, hist, bins, [&](int32_t k) {
    const int32_t count = row_count(geo, lo + k);
    ws.counts[lo + k] = count;
    return count;
  });
  const int32_t window_total =
      work_list::bucket_offsets_desc<kPlannerThreads>(hist, bins, base_slot, scratch);

  // Pass 2: scatter the active rows into their buckets (order inside a bucket is arbitrary;
  // every item is computed independently, so results do not depend on it).
  const auto cost = [&](int32_t k) { return ws.counts[lo + k]; };
  work_list::scatter_by_cost<kPlannerThreads>(
      hi - lo, hist, bins, cost, [&](int32_t slot, int32_t k, int32_t count) {
        const int32_t idx = lo + k;
        const int32_t b = idx / (geo.q_blocks * geo.heads);
        const int32_t kv_len = request_len(geo.cu_seqlens_kv, b, geo.seqlen_kv);
        const int32_t last = (kv_len + kBlockN - 1) / kBlockN - 1;
        bool mask_first = false;
        if (kv_len % kBlockN != 0 && count > 0) {
          mask_first =
              geo.kv_bits == nullptr ||
              ((geo.kv_bits[static_cast<int64_t>(idx) * geo.kv_words + last / 32] >> (last % 32)) &
               1u);
        }
        ws.items[slot] = make_work_item(idx, count, mask_first);
      });
  if (threadIdx.x == 0 && blockIdx.x == gridDim.x - 1) *ws.num_items = base_slot + window_total;
  if (threadIdx.x == 0 && blockIdx.x == 0) *ws.next_item = 0;
}

}  // namespace

void launch_attention_planner(const AttentionGeometry& geo, const PlanWorkspace& ws,
                              int32_t window_rows, cudaStream_t stream) {
  const int32_t rows = geo.batch * geo.heads;
  const int32_t windows = (rows + window_rows - 1) / window_rows;
  attention_planner_kernel<<<windows, kPlannerThreads, 0, stream>>>(geo, ws, window_rows);
  FLASHOMNI_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashomni::cuda::attention
