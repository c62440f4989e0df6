// FlashOmni CUDA layer: sparse attention planner — one small kernel turning the symbols into the
// compacted, cost-sorted work list the persistent attention kernel walks (spec §2, plan-then-run).
#include <cuda_runtime.h>

#include "cuda/attention/attention_plan.h"
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

// Warp-aggregated shared-memory atomicAdd of 1 to counter[key] for the lanes with `active`;
// returns each active lane's old value plus its rank among lanes with the same key. The dense
// case puts every item in one bucket: aggregation turns 32 same-address atomics into one.
__device__ __forceinline__ int32_t aggregated_increment(int32_t* counter, int32_t key,
                                                        bool active) {
  const int lane = threadIdx.x % 32;
  const uint32_t peers = __match_any_sync(0xffffffffu, active ? key : (1 << 30) + lane);
  const int leader = __ffs(peers) - 1;
  int32_t base = 0;
  if (active && lane == leader) base = atomicAdd(counter + key, __popc(peers));
  base = __shfl_sync(0xffffffffu, base, leader);
  return base + __popc(peers & ((1u << lane) - 1u));
}

// Block-wide exclusive scan of hist[0, bins) in descending bucket order, offset by `base`:
// hist[c] becomes the first list slot of bucket c. Returns the window's total.
__device__ int32_t scan_descending(int32_t* hist, int bins, int32_t base, int32_t* warp_sums) {
  const int tid = threadIdx.x;
  const int per = (bins + kPlannerThreads - 1) / kPlannerThreads;
  int32_t local = 0;
  for (int k = 0; k < per; ++k) {
    const int p = tid * per + k;  // position in descending order
    if (p < bins) local += hist[bins - 1 - p];
  }
  int32_t incl = local;
  for (int off = 1; off < 32; off *= 2) {
    const int32_t v = __shfl_up_sync(0xffffffffu, incl, off);
    if (tid % 32 >= off) incl += v;
  }
  if (tid % 32 == 31) warp_sums[tid / 32] = incl;
  __syncthreads();
  constexpr int kWarps = kPlannerThreads / 32;
  if (tid < 32) {
    int32_t w = tid < kWarps ? warp_sums[tid] : 0;
    for (int off = 1; off < 32; off *= 2) {
      const int32_t v = __shfl_up_sync(0xffffffffu, w, off);
      if (tid >= off) w += v;
    }
    if (tid < kWarps) warp_sums[tid] = w;  // inclusive over warps
  }
  __syncthreads();
  const int32_t total = warp_sums[kWarps - 1];
  int32_t running = base + incl - local + (tid >= 32 ? warp_sums[tid / 32 - 1] : 0);
  for (int k = 0; k < per; ++k) {
    const int p = tid * per + k;
    if (p < bins) {
      const int c = bins - 1 - p;
      const int32_t n = hist[c];
      hist[c] = running;
      running += n;
    }
  }
  return total;
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

__device__ int32_t block_sum(int32_t v, int32_t* warp_sums) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  int32_t total = 0;
  for (int w = 0; w < kPlannerThreads / 32; ++w) total += warp_sums[w];
  __syncthreads();
  return total;
}

// CTA w plans window w: rows [w * window_rows, ...). Its first list slot is the number of active
// items in earlier rows, counted from the Sq words alone, so windows need no inter-CTA ordering.
__global__ void __launch_bounds__(kPlannerThreads)
    attention_planner_kernel(AttentionGeometry geo, PlanWorkspace ws, int32_t window_rows) {
  __shared__ int32_t hist[kMaxBins];
  __shared__ int32_t warp_sums[kPlannerThreads / 32];
  const int tid = threadIdx.x;
  const int bins = min(geo.kv_blocks + 1, kMaxBins);
  const int32_t rows = geo.batch * geo.heads;
  const int32_t r0 = static_cast<int32_t>(blockIdx.x) * window_rows;
  const int32_t lo = r0 * geo.q_blocks;
  const int32_t hi = min(rows, r0 + window_rows) * geo.q_blocks;

  int32_t earlier = 0;
  for (int32_t r = tid; r < r0; r += kPlannerThreads) earlier += row_active_queries(geo, r);
  const int32_t base_slot = block_sum(earlier, warp_sums);
  for (int c = tid; c < bins; c += kPlannerThreads) hist[c] = 0;
  __syncthreads();

  // Pass 1: cost of every candidate of the window, histogram of costs.
  for (int32_t base = lo; base < hi; base += kPlannerThreads) {
    const int32_t idx = base + tid;
    int32_t count = -1;
    if (idx < hi) {
      count = row_count(geo, idx);
      ws.counts[idx] = count;
    }
    aggregated_increment(hist, min(count, bins - 1), count >= 0);
  }
  __syncthreads();
  const int32_t window_total = scan_descending(hist, bins, base_slot, warp_sums);
  __syncthreads();

  // Pass 2: scatter the active rows into their buckets (order inside a bucket is arbitrary;
  // every item is computed independently, so results do not depend on it).
  for (int32_t base = lo; base < hi; base += kPlannerThreads) {
    const int32_t idx = base + tid;
    const int32_t count = idx < hi ? ws.counts[idx] : -1;
    const int32_t slot = aggregated_increment(hist, min(count, bins - 1), count >= 0);
    if (count >= 0) {
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
    }
  }
  if (tid == 0 && blockIdx.x == gridDim.x - 1) *ws.num_items = base_slot + window_total;
  if (tid == 0 && blockIdx.x == 0) *ws.next_item = 0;
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
