// FlashOmni CUDA layer: sparse attention producer mainloop — one warp issues the TMA loads of an
// item: Q once, then K and V only for the kept key blocks (walking the Skv bitmap row), through a
// 2-stage mbarrier ring.
#pragma once

#include <cutlass/arch/barrier.h>

#include <cute/tensor.hpp>
#include <cutlass/pipeline/sm90_pipeline.hpp>

#include "cuda/attention/attention_scheduler.cuh"
#include "cuda/attention/attention_traits.cuh"

namespace flashomni::cuda::attention {

using namespace cute;

// Full/empty mbarrier ring shared by the producer and the consumers for K and for V. The full
// barrier of a stage completes on the TMA's transaction bytes, the empty one on 256 consumer
// arrivals. Stage/phase bookkeeping is cutlass::PipelineState.
template <int kStages>
using RingState = cutlass::PipelineState<kStages>;

__device__ __forceinline__ void ring_wait(uint64_t* barrier, uint32_t phase) {
  cutlass::arch::ClusterBarrier::wait(barrier, phase);
}
__device__ __forceinline__ void ring_arrive(uint64_t* barrier) {
  cutlass::arch::ClusterBarrier::arrive(barrier);
}

template <class Traits>
struct AttentionProducer {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  static constexpr int kStages = Traits::kStages;
  static constexpr int kHeadDim = Traits::kHeadDim;

  // Loads one item. `state` is the producer's K/V ring position (K and V share it); `q_round`
  // counts items with a Q load: buffer q_round % 2, which the consumers track the same way.
  __device__ static void load_item(const Params& p, SharedStorage& ss, const ItemInfo& it,
                                   RingState<kStages>& state, uint32_t q_round) {
    const bool leader = cute::elect_one_sync();
    const int q_buf = static_cast<int>(q_round & 1u);
    Tensor sQ = make_tensor(make_smem_ptr(ss.q[q_buf].data()), typename Traits::SmemLayoutQ{});
    Tensor sK = make_tensor(make_smem_ptr(ss.k.data()), typename Traits::SmemLayoutK{});
    Tensor sVt = make_tensor(make_smem_ptr(ss.v.data()), typename Traits::SmemLayoutVt{});

    const int32_t h_kv = it.h / p.heads_per_kv;
    Tensor mQ = p.tma_q.get_tma_tensor(p.shape_q)(_, _, it.h, it.batch_index);
    Tensor mK = p.tma_k.get_tma_tensor(p.shape_k)(_, _, h_kv, it.batch_index);
    Tensor mVt = p.tma_v.get_tma_tensor(p.shape_vt)(_, _, h_kv, it.batch_index);
    Tensor gQ = local_tile(domain_offset(make_coord(it.q_offset, _0{}), mQ),
                           Shape<Int<Traits::kTileM>, Int<kHeadDim>>{}, make_coord(it.i, _0{}));
    Tensor gK = local_tile(domain_offset(make_coord(it.kv_offset, _0{}), mK),
                           Shape<Int<Traits::kTileN>, Int<kHeadDim>>{}, make_coord(_, _0{}));
    Tensor gVt = local_tile(domain_offset(make_coord(_0{}, it.kv_offset), mVt),
                            Shape<Int<kHeadDim>, Int<Traits::kTileN>>{}, make_coord(_0{}, _));

    auto tma_q = p.tma_q.get_slice(_0{});
    auto tma_k = p.tma_k.get_slice(_0{});
    auto tma_v = p.tma_v.get_slice(_0{});
    Tensor tQgQ = tma_q.partition_S(gQ);
    Tensor tQsQ = tma_q.partition_D(sQ);
    Tensor tKgK = tma_k.partition_S(gK);   // (TMA, 1, 1, blocks)
    Tensor tKsK = tma_k.partition_D(sK);   // (TMA, 1, 1, stages)
    Tensor tVgV = tma_v.partition_S(gVt);  // (TMA, 1, 1, blocks)
    Tensor tVsV = tma_v.partition_D(sVt);  // (TMA, 1, 1, stages)

    auto load_k = [&](int32_t j, RingState<kStages> s) {
      ring_wait(&ss.k_empty[s.index()], s.phase());
      if (leader) {
        cutlass::arch::ClusterTransactionBarrier::arrive_and_expect_tx(&ss.k_full[s.index()],
                                                                       Traits::kTmaBytesK);
        copy(p.tma_k.with(ss.k_full[s.index()]), tKgK(_, _, _, j), tKsK(_, _, _, s.index()));
      }
    };
    auto load_v = [&](int32_t j, RingState<kStages> s) {
      ring_wait(&ss.v_empty[s.index()], s.phase());
      if (leader) {
        cutlass::arch::ClusterTransactionBarrier::arrive_and_expect_tx(&ss.v_full[s.index()],
                                                                       Traits::kTmaBytesV);
        copy(p.tma_v.with(ss.v_full[s.index()]), tVgV(_, _, _, j), tVsV(_, _, _, s.index()));
      }
    };

    const int32_t nkb = (it.kv_len + Traits::kTileN - 1) / Traits::kTileN;
    KvBlockIter iter(
        p.geo.kv_bits ? p.geo.kv_bits + static_cast<int64_t>(it.row) * p.geo.kv_words : nullptr,
        nkb);
    int32_t j = iter.next();

    // Q may be overwritten once both consumer warpgroups finished their last S = Q K^T.
    named_barrier_sync(barrier_id(NamedBarrier::kQueryEmpty, q_buf),
                       Traits::kNumConsumerThreads + 32);
    if (leader) {
      cutlass::arch::ClusterTransactionBarrier::arrive_and_expect_tx(&ss.barrier_q[q_buf],
                                                                     Traits::kTmaBytesQ);
      copy(p.tma_q.with(ss.barrier_q[q_buf]), tQgQ, tQsQ);
    }
    // Order of loads = order of use with intra-warpgroup overlap: K(j0), then K(j_n), V(j_{n-1}).
    load_k(j, state);
    int32_t prev = j;
    while ((j = iter.next()) >= 0) {
      RingState<kStages> state_v = state;
      ++state;
      load_k(j, state);
      load_v(prev, state_v);
      prev = j;
    }
    load_v(prev, state);
    ++state;
  }
};

}  // namespace flashomni::cuda::attention
