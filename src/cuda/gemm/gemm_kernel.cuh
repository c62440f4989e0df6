// FlashOmni CUDA layer (GEMM): the persistent warp-specialised sparse GEMM kernel (sm_90a) that
// serves GEMM-Q, GEMM-O update and GEMM-O dispatch, and its launcher template. One CTA per SM;
// warpgroup 0 produces (TMA), warpgroups 1 and 2 consume (wgmma) 64 rows each of every tile.
#pragma once

#include "cuda/common/hopper.cuh"
#include "cuda/gemm/gemm_consumer.cuh"
#include "cuda/gemm/gemm_epilogue.cuh"
#include "cuda/gemm/gemm_producer.cuh"
#include "cuda/gemm/gemm_split.cuh"
#include "cuda/runtime.h"

namespace flashomni::cuda::gemm {

// Register budget after reallocation: 40 for the producer, 232 for the consumers. The CTA holds
// 168 x 384 = 64,512 registers from launch; setmaxnreg.inc blocks until the pool has them, so the
// budgets must fit: 128 x 40 + 256 x 232 = 64,512 (48 / 232 hangs). The 128 fp32 accumulators
// fit with room to spare.
inline constexpr int kProducerRegs = 40;
inline constexpr int kConsumerRegs = 232;
static_assert(128 * kProducerRegs + 256 * kConsumerRegs <= 168 * kThreads, "setmaxnreg pool");

// GEMM-O on a tile of kN columns (256, or 128 for a half of the last round). `cache_phase` is
// the parity of the warpgroup's next staged cache load (cache_staged).
template <int kN, typename T, typename Smem>
__device__ __forceinline__ void consume_o_tile(
    const GemmKernelParams& p, const Tile& t, const FragmentCoords& f, uint8_t* buf,
    const CUtensorMap* out_map, const CUtensorMap* cache_map, Smem& smem,
    PipelineState<Smem::kStages>& state, uint32_t& cache_phase, int32_t warpgroup, int32_t k) {
  constexpr int kBoxes = Smem::kEpilogueBoxes;
  // A dispatch part of a K-split tile other than its owner (split_tile) reduces its range from zero
  // into an fp32 partial; the owner adds the partials before its epilogue. Both go through the
  // one second chain below (a third chain risks ptxas's wgmma serialisation, C7511).
  const bool partial = split_partial(t.split);
  const bool staged = !partial && cache_staged<Smem>(p, t, warpgroup);
  const bool leader = threadIdx.x % 128 == 0;
  float acc[128];
  if (partial) {
    zero_fill<kN / 2>(acc);
  } else if (p.mode == GemmMode::kOUpdate) {
    // C = bias + cached heads, stored; then Y = C + active heads + extra (cache only: C alone),
    // in the same registers (fp32 cache) or from the staged C (16-bit, add_staged_and_store).
    init_bias<kN, T>(acc, p, t, f, smem, state);
    consume_k_blocks<kN, T>(acc, t.phase1, warpgroup, smem, state);
    if (p.cache_fp32) {
      store_tile_tma<kN, kBoxes>(acc, p, t, f, buf, cache_map, warpgroup,
                                 static_cast<float*>(p.cache), p.cache_row_stride,
                                 p.cache_batch_stride);
    } else {
      store_tile_tma<kN, kBoxes>(acc, p, t, f, buf, cache_map, warpgroup, static_cast<T*>(p.cache),
                                 p.cache_row_stride, p.cache_batch_stride);
      // Register path: dispatch starts from the stored 16-bit C. (Staged, the chain below
      // ignores these values; rounding them anyway keeps ptxas from spilling: see
      // consume_k_blocks.)
      round_to_storage<T, kN / 2>(acc);
    }
    if (p.cache_only) return;
  } else if (staged) {
    if (leader) load_cache_staged<kN>(p, t, buf, cache_map, &smem.cache_full[warpgroup], warpgroup);
    // The chain below ignores these values (scale-d 0, as update's does: the same sign of zero,
    // so bit-equal Y); they are defined only because undefined accumulators made ptxas spill.
    zero_fill<kN / 2>(acc);
  } else if (p.cache_fp32) {
    init_from_cache<kN, float>(acc, p, t, f);
  } else {
    init_from_cache<kN, T>(acc, p, t, f);
  }
  hopper::wgmma_fence_operands(acc);
  // Staged: the active heads' sum starts from zero (C is added in the epilogue).
  consume_k_blocks<kN, T>(acc, t.phase2, warpgroup, smem, state, staged || partial ? 0 : 1);
  if (partial) {
    store_partial<kN>(acc, p, t.split, warpgroup);
    return;
  }
  if (t.split != 0) add_partials<kN>(acc, p, t.split, k, warpgroup, smem);
  if (!staged) {
    store_tile_tma<kN, kBoxes>(acc, p, t, f, buf, out_map, warpgroup, static_cast<T*>(p.out),
                               p.out_row_stride, p.out_batch_stride);
    return;
  }
  if (p.mode == GemmMode::kOUpdate) {
    // The staged C is rewritten in place: its TMA store must have read it first.
    if (leader) hopper::bulk_wait_group_read0();
    hopper::named_barrier_sync(1 + warpgroup, 128);
  } else {
    hopper::mbar_wait(&smem.cache_full[warpgroup], cache_phase);
    cache_phase ^= 1;
  }
  add_staged_and_store<kN, T>(acc, t.phase2 > 0, p, t, f, buf, out_map, warpgroup);
}

template <typename T, typename Smem>
__device__ __forceinline__ void consumer_loop(const GemmKernelParams& p, const CUtensorMap* out_map,
                                              const CUtensorMap* cache_map, Smem& smem,
                                              int32_t warpgroup) {
  uint8_t* buf = smem.epilogue[warpgroup];
  PipelineState<Smem::kStages> state;
  if (p.cluster) state.set_pair();
  uint32_t cache_phase = 0;
  const FragmentCoords f(warpgroup);
  const ItemList list = item_list(p);
  // Each path declares its own accumulator: with one array shared by the n128 and n256 paths,
  // ptxas (13.0) cannot keep the fragment in place and serialises every wgmma (C7511). GEMM-O
  // update and dispatch share one (and one second chain): separate ones did the same. The GEMM-Q
  // paths stay written out here: the same code in a force-inlined helper (for the K split's
  // partial and owner steps) also drew C7511 from ptxas 13.0.
  for (int32_t k = round_item(0); k < list.count; k = next_round_item(p, k)) {
    const Tile t = get_tile(p, list, k);
    if (t.idle) continue;
    if (p.mode == GemmMode::kQ) {
      if (t.tall) {
        // Two row tiles x one head (kTallItem): this warpgroup's row tile, 128 x 128 in acc.
        float acc[128];
        init_bias<128, T>(acc, p, t, f, smem, state);
#pragma unroll
        for (int i = 0; i < 64; ++i) acc[64 + i] = acc[i];
        consume_k_blocks<128, T, Smem, true>(acc, t.phase2, warpgroup, smem, state);
        store_tall_tile<Smem::kEpilogueBoxes>(acc, p, t, f, buf, out_map, warpgroup,
                                              static_cast<T*>(p.out));
      } else if (t.slots * p.head_dim <= 128) {
        // One 128-column head (or two of 64) fill only half of the tile: use m64n128 wgmma.
        const bool partial = split_partial(t.split);
        float acc[128];
        if (partial) {
          zero_fill<128 / 2>(acc);
        } else {
          init_bias<128, T>(acc, p, t, f, smem, state);
        }
        consume_k_blocks<128, T>(acc, t.phase2, warpgroup, smem, state, partial ? 0 : 1);
        if (partial) {
          store_partial<128>(acc, p, t.split, warpgroup);
          continue;
        }
        if (t.split != 0) add_partials<128>(acc, p, t.split, k, warpgroup, smem);
        store_tile_tma<128, Smem::kEpilogueBoxes>(acc, p, t, f, buf, out_map, warpgroup,
                                                  static_cast<T*>(p.out), p.out_row_stride,
                                                  p.out_batch_stride);
      } else {
        const bool partial = split_partial(t.split);
        // A pair K split's sender reads the staged bias as the keeper does but starts from zero
        // (the bias is the keeper's to add).
        const bool sender = pair_sender(t.split, warpgroup);
        float acc[128];
        if (partial) {
          zero_fill<256 / 2>(acc);
        } else {
          init_bias<256, T>(acc, p, t, f, smem, state);
        }
        consume_k_blocks<256, T>(acc, t.phase2, warpgroup, smem, state, partial || sender ? 0 : 1);
        if (partial) {
          store_partial<256>(acc, p, t.split, warpgroup);
          continue;
        }
        if (sender) {
          send_pair_partial<256>(acc, warpgroup, smem);
          continue;
        }
        if (pair_split(t.split)) {
          receive_pair_partial<256>(acc, warpgroup, smem);
        } else if (t.split != 0) {
          add_partials<256>(acc, p, t.split, k, warpgroup, smem);
        }
        store_tile_tma<256, Smem::kEpilogueBoxes>(acc, p, t, f, buf, out_map, warpgroup,
                                                  static_cast<T*>(p.out), p.out_row_stride,
                                                  p.out_batch_stride);
      }
    } else if (t.n_width == kTileN) {
      consume_o_tile<kTileN, T>(p, t, f, buf, out_map, cache_map, smem, state, cache_phase,
                                warpgroup, k);
    } else {
      consume_o_tile<kTileN / 2, T>(p, t, f, buf, out_map, cache_map, smem, state, cache_phase,
                                    warpgroup, k);
    }
  }
  // The CTA's shared memory must outlive the last TMA stores' reads of it.
  if (threadIdx.x % 128 == 0) hopper::bulk_wait_group0();
}

template <typename T, int kStages>
__global__ void __launch_bounds__(kThreads, 1)
    sparse_gemm_kernel(const __grid_constant__ GemmKernelParams p,
                       const __grid_constant__ GemmTensorMaps maps) {
  extern __shared__ uint8_t smem_raw[];
  auto& smem = *reinterpret_cast<GemmSharedStorage<kStages>*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  const int32_t warpgroup = threadIdx.x / 128;
  if (threadIdx.x == 0) {
    hopper::tma_prefetch_desc(&maps.a);
    if (p.cluster) hopper::tma_prefetch_desc(&maps.a_half);
    hopper::tma_prefetch_desc(&maps.b);
    hopper::tma_prefetch_desc(&maps.out);
    hopper::tma_prefetch_desc(&maps.cache);
    for (int s = 0; s < kStages; ++s) {
      hopper::mbar_init(&smem.full[s], 1);
      hopper::mbar_init(&smem.empty[s], p.cluster ? 4 : 2);
    }
    for (int w = 0; w < 2; ++w) {
      hopper::mbar_init(&smem.cache_full[w], 1);
      hopper::mbar_init(&smem.partial_full[w], 1);
      hopper::mbar_init(&smem.bias_full[w], 1);
      hopper::mbar_init(&smem.bias_empty[w], 2 * 128);
    }
    hopper::mbar_init(&smem.peer_free, 1);
    hopper::mbar_init_fence();
  }
  // In a cluster the peer's multicasts and arrivals reach these barriers: both CTAs' must be
  // initialised first.
  if (p.cluster) {
    hopper::cluster_sync();
  } else {
    __syncthreads();
  }
  // The planner (or whatever ran before) must be complete before the work list, the operands
  // or the outputs are touched.
  hopper::grid_dependency_wait();
  if (warpgroup == 0) {
    hopper::setmaxnreg_dec<kProducerRegs>();
    if (threadIdx.x == 0) producer_loop(p, &maps.a, &maps.b, smem);
  } else {
    hopper::setmaxnreg_inc<kConsumerRegs>();
    consumer_loop<T>(p, &maps.out, &maps.cache, smem, warpgroup - 1);
  }
  // The peer may still multicast into this CTA's ring or arrive at its barriers until it is done.
  if (p.cluster) hopper::cluster_sync();
}

template <typename T, int kStages>
void launch_sparse_gemm_stages(const GemmKernelParams& p, const GemmTensorMaps& maps, int grid,
                               cudaStream_t stream) {
  auto kernel = sparse_gemm_kernel<T, kStages>;
  // Per device (a process-wide once would leave a second GPU at the 48 KB default).
  static DynamicSmemLimit smem_limit;
  smem_limit.ensure(reinterpret_cast<const void*>(kernel), kSmemBytes<kStages>);
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(grid);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = kSmemBytes<kStages>;
  config.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  // Only cluster launches carry the attribute (a 1 x 1 x 1 cluster is still a cluster launch).
  attr[1].id = cudaLaunchAttributeClusterDimension;
  attr[1].val.clusterDim.x = 2;
  attr[1].val.clusterDim.y = 1;
  attr[1].val.clusterDim.z = 1;
  config.attrs = attr;
  config.numAttrs = p.cluster ? 2 : 1;
  FLASHOMNI_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, p, maps));
}

// The ring length is a compile-time shape (two instantiations per dtype); p.stages picks one.
template <typename T>
void launch_sparse_gemm(const GemmKernelParams& p, const GemmTensorMaps& maps, int grid,
                        cudaStream_t stream) {
  if (p.stages == kMaxStages) {
    launch_sparse_gemm_stages<T, kMaxStages>(p, maps, grid, stream);
  } else {
    launch_sparse_gemm_stages<T, kMaxStages - 1>(p, maps, grid, stream);
  }
}

}  // namespace flashomni::cuda::gemm
