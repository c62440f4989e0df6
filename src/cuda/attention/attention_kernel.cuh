// FlashOmni CUDA layer: sparse attention kernel wiring and its host launcher — a persistent,
// warp-specialised sm_90a kernel (1 TMA producer warpgroup + 2 wgmma consumer warpgroups) over
// the planner's work list. Included once per instantiation (dtype x head dim) .cu file.
#pragma once

#include <cuda_runtime.h>
#include <cutlass/arch/reg_reconfig.h>

#include <cmath>
#include <cute/tensor.hpp>

#include "cuda/attention/attention_consumer.cuh"
#include "cuda/attention/attention_dispatch.h"
#include "cuda/attention/attention_epilogue.cuh"
#include "cuda/attention/attention_producer.cuh"
#include "cuda/attention/attention_scheduler.cuh"
#include "cuda/attention/attention_traits.cuh"
#include "cuda/runtime.h"

namespace flashomni::cuda::attention {

using namespace cute;

template <class Traits>
__global__ void __launch_bounds__(Traits::kNumThreads, 1)
    sparse_attention_kernel(const __grid_constant__ typename Traits::Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using SharedStorage = typename Traits::SharedStorage;
  constexpr int kStages = Traits::kStages;
  extern __shared__ __align__(1024) char smem_raw[];
  SharedStorage& ss = *reinterpret_cast<SharedStorage*>(smem_raw);
  const int warp = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / 32, 0);
  const int warp_group = warp / 4;

  if (warp == 0 && cute::elect_one_sync()) {
    cute::prefetch_tma_descriptor(p.tma_q.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_k.get_tma_descriptor());
    cute::prefetch_tma_descriptor(p.tma_v.get_tma_descriptor());
    for (int b = 0; b < Traits::kQStages; ++b)
      cutlass::arch::ClusterBarrier::init(&ss.barrier_q[b], 1);
    for (int s = 0; s < kStages; ++s) {
      cutlass::arch::ClusterBarrier::init(&ss.k_full[s], 1);
      cutlass::arch::ClusterBarrier::init(&ss.v_full[s], 1);
      cutlass::arch::ClusterBarrier::init(&ss.k_empty[s], Traits::kNumConsumerThreads);
      cutlass::arch::ClusterBarrier::init(&ss.v_empty[s], Traits::kNumConsumerThreads);
      cutlass::arch::ClusterBarrier::init(&ss.ring.full[s], 1);
      cutlass::arch::ClusterBarrier::init(&ss.ring.empty[s], Traits::kNumConsumerThreads);
    }
  }
  cutlass::arch::fence_barrier_init();
  __syncthreads();

  if (warp_group == static_cast<int>(WarpGroupRole::kProducer)) {
    cutlass::arch::warpgroup_reg_dealloc<Traits::kProducerRegs>();
    if (warp != 0) return;  // one warp claims items and issues every TMA load
    const int lane = static_cast<int>(threadIdx.x) % 32;
    const int32_t count = *p.num_items;
    RingState<kStages> state(0, 1, 0);  // producer starts on the "empty" phase
    uint32_t q_round = 0;
    int32_t next = static_cast<int32_t>(blockIdx.x);
    for (uint32_t k = 0;; ++k) {
      const int slot = k & 1;
      ring_wait(&ss.ring.empty[slot], ((k >> 1) & 1) ^ 1);
      const WorkItem w = next < count ? p.items[next] : end_of_work();
      if (lane == 0) {
        ss.ring.item[slot] = w;
        ring_arrive(&ss.ring.full[slot]);
      }
      if (w.row < 0) break;
      const ItemInfo it = decode_item(p.geo, w);
      if (it.blocks > 0) AttentionProducer<Traits>::load_item(p, ss, it, state, q_round++);
      int32_t claimed = 0;
      if (lane == 0) claimed = static_cast<int32_t>(gridDim.x) + atomicAdd(p.next_item, 1);
      next = __shfl_sync(0xffffffffu, claimed, 0);
    }
  } else {
    cutlass::arch::warpgroup_reg_alloc<Traits::kConsumerRegs>();
    using Consumer = AttentionConsumer<Traits>;
    const int thread_idx = static_cast<int>(threadIdx.x) - 128;
    const int wg = thread_idx / 128;
    Consumer::init(wg);
    RingState<kStages> read(0, 0, 0);
    uint32_t q_round = 0;
    for (uint32_t k = 0;; ++k) {
      const int slot = k & 1;
      ring_wait(&ss.ring.full[slot], (k >> 1) & 1);
      const WorkItem w = ss.ring.item[slot];
      ring_arrive(&ss.ring.empty[slot]);
      if (w.row < 0) break;
      const ItemInfo it = decode_item(p.geo, w);
      if (it.blocks == 0) {
        AttentionEpilogue<Traits>::store_empty(p, it, thread_idx);
        continue;
      }
      typename Consumer::FragO tOrO;
      typename Consumer::Softmax softmax;
      softmax.scale_log2 = p.scale_log2;
      Consumer::mma_item(p, ss, it, thread_idx, q_round, read, tOrO, softmax);
      ++q_round;
      AttentionEpilogue<Traits>::store(p, ss, it, thread_idx, tOrO, softmax);
    }
  }
#endif
}

// Host side: builds the TMA descriptors for this call's tensors and launches a persistent grid of
// min(#SMs, candidate items) CTAs (a.ctas); the device-side item count bounds the real work.
template <class Traits>
void launch_sparse_attention(const AttentionRunArgs& a) {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  constexpr int D = Traits::kHeadDim;
  const bool varlen = a.geo.varlen();
  const int32_t nb = varlen ? 1 : a.geo.batch;

  auto q_shape = make_shape(a.total_q, int32_t(D), a.geo.heads, nb);
  auto k_shape = make_shape(a.total_kv, int32_t(D), a.geo.kv_heads, nb);
  auto vt_shape = make_shape(int32_t(D), a.total_kv, a.geo.kv_heads, nb);
  // A size-1 batch mode still needs a legal TMA stride (multiple of 16 bytes): reuse the row one.
  auto bstride = [&](int64_t s, int64_t row) { return varlen ? row : s; };
  Tensor mQ = make_tensor(make_gmem_ptr(static_cast<const Element*>(a.q)), q_shape,
                          make_stride(a.q_row_stride, _1{}, a.q_head_stride,
                                      bstride(a.q_batch_stride, a.q_row_stride)));
  Tensor mK = make_tensor(make_gmem_ptr(static_cast<const Element*>(a.k)), k_shape,
                          make_stride(a.k_row_stride, _1{}, a.k_head_stride,
                                      bstride(a.k_batch_stride, a.k_row_stride)));
  Tensor mVt = make_tensor(make_gmem_ptr(static_cast<const Element*>(a.v)), vt_shape,
                           make_stride(_1{}, a.v_row_stride, a.v_head_stride,
                                       bstride(a.v_batch_stride, a.v_row_stride)));

  Params p{
      make_tma_copy(SM90_TMA_LOAD{}, mQ, typename Traits::SmemLayoutQ{},
                    Shape<Int<Traits::kTileM>, Int<D>>{}, _1{}),
      make_tma_copy(SM90_TMA_LOAD{}, mK, take<0, 2>(typename Traits::SmemLayoutK{}),
                    Shape<Int<Traits::kTileN>, Int<D>>{}, _1{}),
      make_tma_copy(SM90_TMA_LOAD{}, mVt, take<0, 2>(typename Traits::SmemLayoutVt{}),
                    Shape<Int<D>, Int<Traits::kTileN>>{}, _1{}),
      q_shape,
      k_shape,
      vt_shape,
      static_cast<Element*>(a.out),
      varlen ? 0 : a.out_batch_stride,
      a.out_row_stride,
      a.out_head_stride,
      a.lse,
      varlen ? 0 : a.lse_batch_stride,
      a.lse_head_stride,
      a.lse_row_stride,
      static_cast<float>(a.softmax_scale * M_LOG2E),
      a.geo.heads / a.geo.kv_heads,
      a.geo,
      a.items,
      a.num_items,
      a.next_item,
  };

  auto kernel = sparse_attention_kernel<Traits>;
  // Per device (a process-wide once would leave a second GPU at the 48 KB default).
  static DynamicSmemLimit smem_limit;
  smem_limit.ensure(reinterpret_cast<const void*>(kernel), Traits::kSharedBytes);
  const int grid = a.ctas;
  kernel<<<grid, Traits::kNumThreads, Traits::kSharedBytes, a.stream>>>(p);
  FLASHOMNI_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashomni::cuda::attention
