// FlashOmni CUDA layer (common): single-CTA building blocks of the GPU planners — a block-wide
// exclusive scan and a counting sort of candidates by cost (descending), so that persistent
// kernels can take the longest work first (LPT) without any host synchronisation.
//
// Usage (inside a planner kernel launched as one CTA of kThreads threads):
//   __shared__ int32_t hist[kMaxCost + 2];
//   sort_by_cost_desc<kThreads, kMaxCost>(n, hist, [&](int32_t i) { return cost_of(i); },
//                                          [&](int32_t rank, int32_t i) { out[rank] = i; }, count);
// cost_of(i) < 0 drops candidate i; costs above kMaxCost share the top bucket.
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

// Counting sort of candidates 0..n-1 by cost, descending, in one CTA. `hist` is shared memory of
// kMaxCost + 2 ints. emit(rank, i) is called once per kept candidate with its position in the
// sorted list (order inside one cost bucket is unspecified). *count (global) receives the number
// kept; it is written by thread 0 before return. cost(i) is evaluated twice per candidate.
template <int kThreads, int kMaxCost, typename CostFn, typename EmitFn>
__device__ void sort_by_cost_desc(int32_t n, int32_t* hist, CostFn cost, EmitFn emit,
                                  int32_t* count) {
  for (int32_t c = threadIdx.x; c < kMaxCost + 2; c += kThreads) hist[c] = 0;
  __syncthreads();
  for (int32_t i = threadIdx.x; i < n; i += kThreads) {
    const int32_t c = cost(i);
    if (c >= 0) atomicAdd(&hist[c < kMaxCost ? c : kMaxCost], 1);
  }
  __syncthreads();
  // Bucket start offsets, highest cost first (kMaxCost is small: a serial scan by one thread of
  // at most ~1K buckets costs a few microseconds, below the planner's launch latency).
  if (threadIdx.x == 0) {
    int32_t running = 0;
    for (int32_t c = kMaxCost; c >= 0; --c) {
      const int32_t h = hist[c];
      hist[c] = running;
      running += h;
    }
    hist[kMaxCost + 1] = running;
    *count = running;
  }
  __syncthreads();
  for (int32_t i = threadIdx.x; i < n; i += kThreads) {
    const int32_t c = cost(i);
    if (c >= 0) emit(atomicAdd(&hist[c < kMaxCost ? c : kMaxCost], 1), i);
  }
}

}  // namespace flashomni::cuda::work_list
