// FlashOmni CUDA layer (common): single-CTA building blocks of the GPU planners (sparse GEMM and
// sparse attention) — a block-wide exclusive scan and a counting sort of candidates by cost
// (descending), so that persistent kernels can take the longest work first (LPT) without any host
// synchronisation.
//
// The counting sort runs in three steps a planner may also call one by one (the attention planner
// does: one CTA per window, a slot base per window, costs memoised between the passes):
//   cost_histogram      pass 1: histogram of the candidates' costs (warp-aggregated atomics);
//   bucket_offsets_desc block-wide scan of the histogram, highest cost first: bucket -> first slot;
//   scatter_by_cost     pass 2: emit(slot, i, cost) for every kept candidate.
// sort_by_cost_desc chains them over one CTA (the GEMM-O planner):
//   __shared__ int32_t hist[kMaxCost + 2];
//   sort_by_cost_desc<kThreads, kMaxCost>(n, hist, [&](int32_t i) { return cost_of(i); },
//                                          [&](int32_t rank, int32_t i) { out[rank] = i; }, count);
// cost_of(i) < 0 drops candidate i; costs at or above the top bucket share it. The order inside a
// bucket is unspecified (atomics); every planner's items are independent of their list position.
#pragma once

#include <cstdint>

namespace flashomni::cuda::work_list {

// Exclusive prefix sum of one value per thread across the CTA; returns the thread's offset and
// writes the CTA total to *total (every thread sees it). `scratch` holds kThreads / 32 + 1 ints.
template <int kThreads>
__device__ __forceinline__ int32_t block_exclusive_scan(int32_t value, int32_t* scratch,
                                                        int32_t* total) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps, at most 1024 threads");
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int32_t inclusive = value;
#pragma unroll
  for (int d = 1; d < 32; d *= 2) {
    const int32_t v = __shfl_up_sync(0xffffffffu, inclusive, d);
    if (lane >= d) inclusive += v;
  }
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    int32_t w = lane < kWarps ? scratch[lane] : 0;
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const int32_t v = __shfl_up_sync(0xffffffffu, w, d);
      if (lane >= d) w += v;
    }
    if (lane < kWarps) scratch[lane] = w;  // inclusive warp totals
    if (lane == kWarps - 1) scratch[kWarps] = w;
  }
  __syncthreads();
  const int32_t offset = (warp > 0 ? scratch[warp - 1] : 0) + inclusive - value;
  *total = scratch[kWarps];
  __syncthreads();  // scratch may be reused by the caller's next scan
  return offset;
}

// Warp-aggregated shared-memory atomicAdd of 1 to counter[key] for the lanes with `active`;
// returns each active lane's old value plus its rank among lanes with the same key. Every lane of
// the warp must call it. A dense problem puts every candidate in one bucket: aggregation turns
// 32 same-address atomics into one.
__device__ __forceinline__ int32_t aggregated_increment(int32_t* counter, int32_t key,
                                                        bool active) {
  const int lane = threadIdx.x % 32;
  // Inactive lanes get keys no bucket uses (buckets are < 2^30), each its own.
  const uint32_t peers = __match_any_sync(0xffffffffu, active ? key : (1 << 30) + lane);
  const int leader = __ffs(peers) - 1;
  int32_t base = 0;
  if (active && lane == leader) base = atomicAdd(counter + key, __popc(peers));
  base = __shfl_sync(0xffffffffu, base, leader);
  return base + __popc(peers & ((1u << lane) - 1u));
}

// Pass 1: zeroes hist[0, bins) and counts candidates 0..n-1 by cost(i) (< 0: dropped; >= bins - 1:
// the top bucket). Every thread makes ceil(n / kThreads) trips, so whole warps reach the
// aggregated atomics. Ends with a barrier.
template <int kThreads, typename CostFn>
__device__ void cost_histogram(int32_t n, int32_t* hist, int32_t bins, CostFn cost) {
  for (int32_t c = threadIdx.x; c < bins; c += kThreads) hist[c] = 0;
  __syncthreads();
  for (int32_t start = 0; start < n; start += kThreads) {
    const int32_t i = start + static_cast<int32_t>(threadIdx.x);
    const int32_t c = i < n ? cost(i) : -1;
    aggregated_increment(hist, min(c, bins - 1), c >= 0);
  }
  __syncthreads();
}

// Turns the histogram into bucket offsets, highest cost first: hist[c] becomes `base` plus the
// number of candidates in buckets above c. Each thread scans ceil(bins / kThreads) adjacent
// buckets (4096 buckets: 8 per thread of 512), then one block_exclusive_scan joins the threads.
// `scratch` holds kThreads / 32 + 1 ints. Returns the number of kept candidates (without base).
// Ends with a barrier.
template <int kThreads>
__device__ int32_t bucket_offsets_desc(int32_t* hist, int32_t bins, int32_t base,
                                       int32_t* scratch) {
  const int32_t per = (bins + kThreads - 1) / kThreads;
  const int32_t first = static_cast<int32_t>(threadIdx.x) * per;  // position in descending order
  int32_t local = 0;
  for (int32_t k = 0; k < per; ++k) {
    if (first + k < bins) local += hist[bins - 1 - (first + k)];
  }
  int32_t total = 0;
  int32_t running = base + block_exclusive_scan<kThreads>(local, scratch, &total);
  for (int32_t k = 0; k < per; ++k) {
    if (first + k < bins) {
      const int32_t c = bins - 1 - (first + k);
      const int32_t count = hist[c];
      hist[c] = running;
      running += count;
    }
  }
  __syncthreads();
  return total;
}

// Pass 2: emit(slot, i, cost) once per kept candidate, slot = its position in the sorted list.
// cost(i) must return what it returned in pass 1.
template <int kThreads, typename CostFn, typename EmitFn>
__device__ void scatter_by_cost(int32_t n, int32_t* hist, int32_t bins, CostFn cost, EmitFn emit) {
  for (int32_t start = 0; start < n; start += kThreads) {
    const int32_t i = start + static_cast<int32_t>(threadIdx.x);
    const int32_t c = i < n ? cost(i) : -1;
    const int32_t slot = aggregated_increment(hist, min(c, bins - 1), c >= 0);
    if (c >= 0) emit(slot, i, c);
  }
}

// Counting sort of candidates 0..n-1 by cost, descending, in one CTA. `hist` is shared memory of
// at least kMaxCost + 1 ints. emit(rank, i) is called once per kept candidate with its position in
// the sorted list. *count (global) receives the number kept; it is written by thread 0 before
// the scatter. cost(i) is evaluated twice per candidate.
template <int kThreads, int kMaxCost, typename CostFn, typename EmitFn>
__device__ void sort_by_cost_desc(int32_t n, int32_t* hist, CostFn cost, EmitFn emit,
                                  int32_t* count) {
  __shared__ int32_t scratch[kThreads / 32 + 1];
  constexpr int32_t kBins = kMaxCost + 1;
  cost_histogram<kThreads>(n, hist, kBins, cost);
  const int32_t total = bucket_offsets_desc<kThreads>(hist, kBins, 0, scratch);
  if (threadIdx.x == 0) *count = total;
  scatter_by_cost<kThreads>(n, hist, kBins, cost,
                            [&](int32_t rank, int32_t i, int32_t) { emit(rank, i); });
}

}  // namespace flashomni::cuda::work_list
