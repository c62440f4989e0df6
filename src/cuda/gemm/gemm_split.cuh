// FlashOmni CUDA layer (GEMM): the fixup of split items (stream-K tail) — each part writes its
// fp32 accumulators to a workspace slot and takes a ticket; the last part to arrive sums every
// part's slot in CTA order (a fixed order: results do not depend on which part came last) and
// stores the tile. No CTA ever waits for another, so there is no deadlock whatever the residency.
#pragma once

#include "cuda/gemm/gemm_scheduler.cuh"
#include "cuda/gemm/gemm_smem.cuh"

namespace flashomni::cuda::gemm {

// Named barrier over both consumer warpgroups (ids 1 and 2 are the per-warpgroup epilogue ones).
inline constexpr int kConsumersBarrier = 3;
inline constexpr int kConsumerThreads = 256;

// Workspace slot of CTA g's part of item [c0, c1): slot 0 if its range starts inside the item (its
// first item), else slot 1 (its range ends inside the item: its last item).
__device__ __forceinline__ float* partial_slot(const GemmKernelParams& p, const SplitTail& s,
                                               int32_t g, int64_t c0) {
  const int32_t slot = s.begin(g) >= c0 ? 0 : 1;
  return p.partials + static_cast<int64_t>(kPartialSlotsPerCta * g + slot) * kPartialFloats;
}

// Stores this part of item u.item, takes its ticket and, when it is the last part, leaves the sum
// of all parts in acc and returns true (the caller stores the tile). kN / 2 accumulators per
// thread are live (kN = 128 or 256 columns); thread t of the 256 consumers writes value r at
// [r * 256 + t], so each store instruction of a warp covers 128 contiguous bytes.
template <int kN>
__device__ __forceinline__ bool reduce_split(float (&acc)[128], const GemmKernelParams& p,
                                             const Unit& u, GemmSharedStorage& smem) {
  constexpr int kLive = kN / 2;
  const SplitTail s = split_tail(p);
  const int32_t g = static_cast<int32_t>(blockIdx.x);
  const int64_t c0 = item_prefix(p, u.item), c1 = item_prefix(p, u.item + 1);
  const int32_t tid = static_cast<int32_t>(threadIdx.x) - 128;
  float* mine = partial_slot(p, s, g, c0);
#pragma unroll
  for (int r = 0; r < kLive; ++r) __stcg(mine + r * kConsumerThreads + tid, acc[r]);
  // Contributors: the contiguous CTAs whose ranges meet [c0, c1).
  int32_t g_first = g, g_last = g;
  while (s.begin(g_first) > c0) --g_first;
  while (g_last + 1 < s.ctas && s.begin(g_last + 1) < c1) ++g_last;
  __threadfence();  // this thread's partial is visible device-wide before the ticket
  hopper::named_barrier_sync(kConsumersBarrier, kConsumerThreads);
  if (tid == 0) {
    int32_t* ticket = p.tickets + (u.item - s.n_dp);
    const int32_t arrived = atomicAdd(ticket, 1) + 1;
    const bool last = arrived == g_last - g_first + 1;
    if (last) *ticket = 0;  // every part has arrived: ready for the next launch
    smem.split_last = last ? 1 : 0;
  }
  hopper::named_barrier_sync(kConsumersBarrier, kConsumerThreads);
  if (smem.split_last == 0) return false;
  __threadfence();  // the other parts' stores, published before their tickets, are seen
#pragma unroll
  for (int r = 0; r < kLive; ++r) acc[r] = 0.f;
  for (int32_t c = g_first; c <= g_last; ++c) {
    const float* part = partial_slot(p, s, c, c0);
#pragma unroll
    for (int r = 0; r < kLive; ++r) acc[r] += __ldcg(part + r * kConsumerThreads + tid);
  }
  return true;
}

}  // namespace flashomni::cuda::gemm
