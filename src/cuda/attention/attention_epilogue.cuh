// FlashOmni CUDA layer: sparse attention epilogue — O (already x 1/rowsum) to 16-bit, through
// swizzled shared memory (stmatrix) into 16-byte global stores of the request's valid rows, plus
// the natural-log LSE per row; and the O = 0 / LSE = -inf store of items with no kept key block.
// Cached items never reach here: their rows are not written.
#pragma once

#include <cmath>
#include <cute/tensor.hpp>

#include "cuda/attention/attention_consumer.cuh"
#include "cuda/attention/attention_scheduler.cuh"
#include "cuda/attention/attention_traits.cuh"

namespace flashomni::cuda::attention {

using namespace cute;

template <class Traits>
struct AttentionEpilogue {
  using Element = typename Traits::Element;
  using Params = typename Traits::Params;
  using SharedStorage = typename Traits::SharedStorage;
  static constexpr int kHeadDim = Traits::kHeadDim;
  static constexpr int kWgRows = Traits::kTileM / 2;  // rows per consumer warpgroup
  // 16-byte vectors: kHeadDim / 8 threads per row, 128 threads cover 128 / (kHeadDim / 8) rows.
  static constexpr int kThreadsPerRow = kHeadDim / 8;
  using GmemCopyO =
      decltype(make_tiled_copy(Copy_Atom<AutoVectorizingCopyWithAssumedAlignment<128>, Element>{},
                               Layout<Shape<Int<128 / kThreadsPerRow>, Int<kThreadsPerRow>>,
                                      Stride<Int<kThreadsPerRow>, _1>>{},
                               Layout<Shape<_1, _8>>{}));

  // Global view of this warpgroup's 64 rows of out for the item (row stride runtime).
  __device__ static auto out_rows(const Params& p, const ItemInfo& it, int wg) {
    const int64_t row0 = static_cast<int64_t>(it.q_offset) + it.i * Traits::kTileM + wg * kWgRows;
    Element* base = p.out + it.batch_index * p.out_batch_stride + row0 * p.out_row_stride +
                    it.h * p.out_head_stride;
    return make_tensor(make_gmem_ptr(base), Shape<Int<kWgRows>, Int<kHeadDim>>{},
                       make_stride(p.out_row_stride, _1{}));
  }
  __device__ static int32_t valid_rows(const ItemInfo& it, int wg) {
    return it.q_len - it.i * Traits::kTileM - wg * kWgRows;
  }
  __device__ static float* lse_row(const Params& p, const ItemInfo& it, int row_in_tile) {
    const int64_t row = static_cast<int64_t>(it.q_offset) + it.i * Traits::kTileM + row_in_tile;
    return p.lse + it.b * p.lse_batch_stride + it.h * p.lse_head_stride + row * p.lse_row_stride;
  }

  template <class FragO, class Softmax>
  __device__ static void store(const Params& p, SharedStorage& ss, const ItemInfo& it,
                               int thread_idx, FragO& tOrO, const Softmax& softmax) {
    const int wg = thread_idx / 128;
    const int wg_thread = thread_idx % 128;
    typename Traits::TiledMmaPV mma_pv;
    Tensor sO = make_tensor(make_smem_ptr(ss.o.data()), typename Traits::SmemLayoutO{});

    // LSE: the thread holding column 0 of a row (lane % 4 == 0) writes it.
    if (p.lse != nullptr) {
      Tensor cO =
          mma_pv.get_thread_slice(thread_idx)
              .partition_C(make_identity_tensor(Shape<Int<Traits::kTileM>, Int<kHeadDim>>{}));
      Tensor cO_rc = make_tensor(cO.data(), acc_rowcol(cO.layout()));
      if (get<1>(cO_rc(0, 0)) == 0) {
        CUTLASS_PRAGMA_UNROLL
        for (int r = 0; r < Softmax::kRowsPerThread; ++r) {
          const int row = get<0>(cO_rc(r, 0));
          if (row < it.q_len - it.i * Traits::kTileM) *lse_row(p, it, row) = softmax.row_sum[r];
        }
      }
    }

    Tensor tOrO_out = make_tensor_like<Element>(tOrO);
    convert_fragment<Element>(tOrO, tOrO_out);
    auto smem_copy = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, mma_pv);
    auto smem_thr = smem_copy.get_thread_slice(thread_idx);
    Tensor taccOrO = smem_thr.retile_S(tOrO_out);
    Tensor taccOsO = smem_thr.partition_D(sO);
    // This warpgroup's previous global stores read sO: wait for all of them before overwriting.
    named_barrier_sync(barrier_id(NamedBarrier::kEpilogueWg0, wg), 128);
    copy(smem_copy, taccOrO, taccOsO);
    named_barrier_sync(barrier_id(NamedBarrier::kEpilogueWg0, wg), 128);

    GmemCopyO gmem_copy;
    auto gmem_thr = gmem_copy.get_thread_slice(wg_thread);
    Tensor sO_wg = local_tile(sO, Shape<Int<kWgRows>, Int<kHeadDim>>{}, make_coord(wg, _0{}));
    Tensor tOsO = gmem_thr.partition_S(sO_wg);
    Tensor tOrO_g = make_fragment_like(tOsO);
    copy(gmem_copy, tOsO, tOrO_g);
    Tensor gO = out_rows(p, it, wg);
    Tensor tOgO = gmem_thr.partition_D(gO);
    Tensor tOcO = gmem_thr.partition_D(make_identity_tensor(Shape<Int<kWgRows>, Int<kHeadDim>>{}));
    const int32_t rows = valid_rows(it, wg);
    CUTLASS_PRAGMA_UNROLL
    for (int m = 0; m < size<1>(tOgO); ++m) {
      if (get<0>(tOcO(0, m, 0)) < rows) copy(gmem_copy, tOrO_g(_, m, _), tOgO(_, m, _));
    }
  }

  // An active item with no kept key block: O = 0 and LSE = -inf on its valid rows.
  __device__ static void store_empty(const Params& p, const ItemInfo& it, int thread_idx) {
    const int wg = thread_idx / 128;
    const int wg_thread = thread_idx % 128;
    GmemCopyO gmem_copy;
    auto gmem_thr = gmem_copy.get_thread_slice(wg_thread);
    Tensor gO = out_rows(p, it, wg);
    Tensor tOgO = gmem_thr.partition_D(gO);
    Tensor tOcO = gmem_thr.partition_D(make_identity_tensor(Shape<Int<kWgRows>, Int<kHeadDim>>{}));
    Tensor zero = make_fragment_like(tOgO);
    clear(zero);
    const int32_t rows = valid_rows(it, wg);
    CUTLASS_PRAGMA_UNROLL
    for (int m = 0; m < size<1>(tOgO); ++m) {
      if (get<0>(tOcO(0, m, 0)) < rows) copy(gmem_copy, zero(_, m, _), tOgO(_, m, _));
    }
    if (p.lse != nullptr && wg_thread < kWgRows && wg_thread < rows) {
      *lse_row(p, it, wg * kWgRows + wg_thread) = -INFINITY;
    }
  }
};

}  // namespace flashomni::cuda::attention
