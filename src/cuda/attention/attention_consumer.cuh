// FlashOmni CUDA layer: sparse attention consumer mainloop — two warpgroups of 64 query rows run
// S = Q K^T (wgmma, smem x smem), the online softmax in fp32 registers (exp2, scale folded in) and
// O += P V (wgmma, P from registers), ping-ponging their GEMMs and overlapping the next S GEMM
// with the current softmax (FlashAttention-3's schedule).
#pragma once

#include <cutlass/arch/barrier.h>
#include <cutlass/numeric_conversion.h>

#include <cmath>
#include <cute/tensor.hpp>

#include "cuda/attention/attention_producer.cuh"
#include "cuda/attention/attention_scheduler.cuh"
#include "cuda/attention/attention_traits.cuh"

namespace flashomni::cuda::attention {

using namespace cute;

// ((2, 2, N/8), MMA_M, MMA_N) accumulator -> (rows = (2, MMA_M), cols = (2, N/8, MMA_N)).
template <class Layout0>
__device__ __forceinline__ auto acc_rowcol(Layout0 l) {
  static_assert(decltype(rank<0>(l))::value == 3 && decltype(rank(l))::value == 3);
  return make_layout(make_layout(get<0, 1>(l), get<1>(l)),
                     make_layout(get<0, 0>(l), get<0, 2>(l), get<2>(l)));
}

// 16-bit A operand from an accumulator: ((2, 2, N/8), M, N) -> ((2, 2, 2), M, (N/16, N)).
template <class Layout0>
__device__ __forceinline__ auto acc_to_a_layout(Layout0 l) {
  auto split = logical_divide(get<0, 2>(l), Tile<_2>{});
  return make_layout(make_layout(get<0, 0>(l), get<0, 1>(l), get<0, 0>(split)), get<1>(l),
                     coalesce(make_layout(get<0, 1>(split), get<2>(l))));
}

// Issues one warpgroup GEMM over the K extent; wg_wait < 0 leaves it in flight.
template <bool kZeroInit, int kWait, class TiledMma, class TA, class TB, class TC>
__device__ __forceinline__ void wg_gemm(TiledMma& mma, TA const& a, TB const& b, TC& c) {
  constexpr bool kRegA = !is_base_of<GMMA::DescriptorIterator, typename TiledMma::FrgTypeA>::value;
  if constexpr (kRegA) warpgroup_fence_operand(const_cast<TA&>(a));
  warpgroup_fence_operand(c);
  warpgroup_arrive();
  if constexpr (kZeroInit) mma.accumulate_ = GMMA::ScaleOut::Zero;
  CUTLASS_PRAGMA_UNROLL
  for (int k = 0; k < size<2>(a); ++k) {
    cute::gemm(mma, a(_, _, k), b(_, _, k), c);
    mma.accumulate_ = GMMA::ScaleOut::One;
  }
  warpgroup_commit_batch();
  if constexpr (kWait >= 0) warpgroup_wait<kWait>();
  warpgroup_fence_operand(c);
  if constexpr (kRegA) warpgroup_fence_operand(const_cast<TA&>(a));
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Online softmax state of this thread's kRows rows (row max of raw scores, running row sum of
// this thread's columns; the quad reduction of the sum is deferred to finalize()).
template <int kRows>
struct OnlineSoftmax {
  static constexpr int kRowsPerThread = kRows;
  float row_max[kRows];
  float row_sum[kRows];
  float scale_log2;

  // Updates the row max with `s` (rows x cols view) and returns the factor old -> new for O.
  template <bool kFirst, bool kCheckInf, class TensorS>
  __device__ __forceinline__ void max_and_scale(TensorS& s, float (&o_scale)[kRows]) {
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < kRows; ++r) {
      float m = kFirst ? -INFINITY : row_max[r];
      CUTLASS_PRAGMA_UNROLL
      for (int c = 0; c < size<1>(s); ++c) m = fmaxf(m, s(r, c));
      m = quad_max(m);
      if constexpr (kFirst) {
        o_scale[r] = 1.0f;
      } else {
        const float cur = kCheckInf && m == -INFINITY ? 0.0f : m;
        o_scale[r] = exp2f((row_max[r] - cur) * scale_log2);
        row_sum[r] *= o_scale[r];
      }
      row_max[r] = m;
    }
  }

  // P = exp2(s * scale_log2 - max * scale_log2) in place; accumulates the row sums.
  template <bool kFirst, bool kCheckInf, class TensorS>
  __device__ __forceinline__ void exponentiate(TensorS& s) {
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < kRows; ++r) {
      const float max_scaled =
          (kCheckInf && row_max[r] == -INFINITY) ? 0.0f : row_max[r] * scale_log2;
      float sum = kFirst ? 0.0f : row_sum[r];
      CUTLASS_PRAGMA_UNROLL
      for (int c = 0; c < size<1>(s); ++c) {
        s(r, c) = exp2f(s(r, c) * scale_log2 - max_scaled);
        sum += s(r, c);
      }
      row_sum[r] = sum;
    }
  }

  // Returns 1 / rowsum for O and turns row_sum into the natural-log LSE (-inf for empty rows).
  __device__ __forceinline__ void finalize(float (&o_scale)[kRows]) {
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < kRows; ++r) {
      const float sum = quad_sum(row_sum[r]);
      const bool empty = sum == 0.0f || sum != sum;
      o_scale[r] = empty ? 0.0f : 1.0f / sum;
      row_sum[r] = empty ? -INFINITY : row_max[r] * (scale_log2 * float(M_LN2)) + __logf(sum);
    }
  }
};

template <class TensorO, int kRows>
__device__ __forceinline__ void rescale_o(TensorO& o, const float (&scale)[kRows]) {
  Tensor rc = make_tensor(o.data(), acc_rowcol(o.layout()));
  CUTLASS_PRAGMA_UNROLL
  for (int r = 0; r < kRows; ++r) {
    CUTLASS_PRAGMA_UNROLL
    for (int c = 0; c < size<1>(rc); ++c) rc(r, c) *= scale[r];
  }
}

template <class To, class TensorIn, class TensorOut>
__device__ __forceinline__ void convert_fragment(TensorIn const& in, TensorOut& out) {
  constexpr int kN = decltype(size(in))::value;
  using Converter = cutlass::NumericArrayConverter<To, float, kN>;
  auto frag = Converter{}(*reinterpret_cast<const cutlass::Array<float, kN>*>(in.data()));
  *reinterpret_cast<cutlass::Array<To, kN>*>(out.data()) = frag;
}

template <class Traits>
struct AttentionConsumer {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  using TiledMmaQK = typename Traits::TiledMmaQK;
  using TiledMmaPV = typename Traits::TiledMmaPV;
  static constexpr int kStages = Traits::kStages;
  static constexpr int kRows = 2;  // 64 rows per warpgroup / (128 threads / 4 per row)
  using Softmax = OnlineSoftmax<kRows>;
  using FragO = decltype(partition_fragment_C(TiledMmaPV{},
                                              Shape<Int<Traits::kTileM>, Int<Traits::kHeadDim>>{}));

  // Warpgroup `wg` (0 or 1) waits for the other one's token before issuing its GEMMs, so their
  // GEMMs alternate and each one's softmax hides under the other's tensor-core work.
  __device__ static void scheduler_sync(int wg) {
    named_barrier_sync(barrier_id(NamedBarrier::kSchedulerWg0, wg), 256);
  }
  __device__ static void scheduler_pass(int wg) {
    named_barrier_arrive(barrier_id(NamedBarrier::kSchedulerWg0, 1 - wg), 256);
  }

  // Once per CTA: both Q buffers start empty, and warpgroup 0 holds the first ping-pong token.
  __device__ static void init(int wg) {
    for (int buf = 0; buf < Traits::kQStages; ++buf) {
      named_barrier_arrive(barrier_id(NamedBarrier::kQueryEmpty, buf),
                           Traits::kNumConsumerThreads + 32);
    }
    if (wg == 0) named_barrier_arrive(barrier_id(NamedBarrier::kSchedulerWg0, 0), 256);
  }

  // Runs one item with blocks >= 1; leaves O unnormalised x (1 / rowsum) applied, and the LSE in
  // softmax.row_sum.
  __device__ static void mma_item(const Params& p, SharedStorage& ss, const ItemInfo& it,
                                  int thread_idx, uint32_t q_round, RingState<kStages>& read,
                                  FragO& tOrO, Softmax& softmax) {
    const int wg = thread_idx / 128;
    TiledMmaQK mma_qk;
    TiledMmaPV mma_pv;
    auto wg_qk = mma_qk.get_slice(wg * 128);
    auto wg_pv = mma_pv.get_slice(wg * 128);
    const int q_buf = static_cast<int>(q_round & 1u);
    Tensor sQ = make_tensor(make_smem_ptr(ss.q[q_buf].data()), typename Traits::SmemLayoutQ{});
    Tensor sK = make_tensor(make_smem_ptr(ss.k.data()), typename Traits::SmemLayoutK{});
    Tensor sVt = make_tensor(make_smem_ptr(ss.v.data()), typename Traits::SmemLayoutVt{});
    Tensor tSrQ = wg_qk.partition_fragment_A(sQ);
    Tensor tSrK = wg_qk.partition_fragment_B(sK);
    Tensor tOrV = wg_pv.partition_fragment_B(sVt);

    Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<Traits::kTileM>, Int<Traits::kTileN>>{});
    Tensor tSrS_rc = make_tensor(tSrS.data(), acc_rowcol(tSrS.layout()));
    Tensor tOrP = make_tensor<Element>(acc_to_a_layout(tSrS.layout()));
    float o_scale[kRows];

    auto wait_full = [](uint64_t* bar, RingState<kStages> s) {
      ring_wait(&bar[s.index()], s.phase());
    };

    // Block 0 (highest kept j): S, mask the partial tail, first softmax step.
    ring_wait(&ss.barrier_q[q_buf], (q_round >> 1) & 1u);
    wait_full(ss.k_full, read);
    wg_gemm<true, 0>(mma_qk, tSrQ, tSrK(_, _, _, read.index()), tSrS);
    ring_arrive(&ss.k_empty[read.index()]);
    if (it.mask_first) {
      // Keys at or past kv_len in the tail block are -inf (TMA zero-fills or reads the next
      // request's rows there).
      const int32_t nkb = (it.kv_len + Traits::kTileN - 1) / Traits::kTileN;
      const int32_t valid = it.kv_len - (nkb - 1) * Traits::kTileN;
      Tensor cS =
          mma_qk.get_thread_slice(thread_idx)
              .partition_C(make_identity_tensor(Shape<Int<Traits::kTileM>, Int<Traits::kTileN>>{}));
      Tensor cS_rc = make_tensor(cS.data(), acc_rowcol(cS.layout()));
      CUTLASS_PRAGMA_UNROLL
      for (int c = 0; c < size<1>(tSrS_rc); ++c) {
        if (get<1>(cS_rc(0, c)) >= valid) {
          CUTLASS_PRAGMA_UNROLL
          for (int r = 0; r < kRows; ++r) tSrS_rc(r, c) = -INFINITY;
        }
      }
    }
    softmax.template max_and_scale<true, true>(tSrS_rc, o_scale);
    softmax.template exponentiate<true, true>(tSrS_rc);
    convert_fragment<Element>(tSrS, tOrP);
    clear(tOrO);

    // Steady state: S(n) = Q K(n)^T is issued before O += P(n-1) V(n-1), and the softmax of S(n)
    // runs while the PV GEMM is in flight.
    for (int n = 1; n < it.blocks; ++n) {
      RingState<kStages> read_v = read;
      ++read;
      wait_full(ss.k_full, read);
      scheduler_sync(wg);
      wg_gemm<true, -1>(mma_qk, tSrQ, tSrK(_, _, _, read.index()), tSrS);
      wait_full(ss.v_full, read_v);
      wg_gemm<false, -1>(mma_pv, tOrP, tOrV(_, _, _, read_v.index()), tOrO);
      scheduler_pass(wg);
      warpgroup_wait<1>();
      ring_arrive(&ss.k_empty[read.index()]);
      softmax.template max_and_scale<false, false>(tSrS_rc, o_scale);
      softmax.template exponentiate<false, false>(tSrS_rc);
      warpgroup_wait<0>();
      ring_arrive(&ss.v_empty[read_v.index()]);
      convert_fragment<Element>(tSrS, tOrP);
      rescale_o(tOrO, o_scale);
    }
    // Q is no longer read by this item: the producer may load the next one.
    named_barrier_arrive(barrier_id(NamedBarrier::kQueryEmpty, q_buf),
                         Traits::kNumConsumerThreads + 32);
    wait_full(ss.v_full, read);
    wg_gemm<false, -1>(mma_pv, tOrP, tOrV(_, _, _, read.index()), tOrO);
    softmax.finalize(o_scale);
    warpgroup_wait<0>();
    ring_arrive(&ss.v_empty[read.index()]);
    ++read;
    rescale_o(tOrO, o_scale);
  }
};

}  // namespace flashomni::cuda::attention
