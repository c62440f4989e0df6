// FlashOmni CUDA layer (GEMM): the consumer mainloop — a warpgroup owns 64 rows of the 128 x 256
// tile and, per k-block, issues 4 wgmma (k16) on the stage the producer filled, keeping one
// k-block in flight before handing the previous stage back to the producer.
#pragma once

#include "cuda/common/hopper.cuh"
#include "cuda/gemm/gemm_smem.cuh"
#include "cuda/gemm/gemm_wgmma.cuh"

namespace flashomni::cuda::gemm {

// Reduces `count` k-blocks into acc and drains: on return every wgmma has completed and all the
// stages it used are released. kN = 256 (full tile) or 128 (first half of the columns only).
// accumulate = 0 starts from zero (the first wgmma's scale-d is 0) instead of acc's values: zeroing
// the registers in the caller after a chain whose values were just stored made ptxas (13.0) give
// the second chain new registers, spill 11 KB and serialise every wgmma (C7512).
template <int kN, typename T, typename Smem>
__device__ __forceinline__ void consume_k_blocks(float (&acc)[128], int32_t count,
                                                 int32_t warpgroup, Smem& smem,
                                                 PipelineState<Smem::kStages>& state,
                                                 int32_t accumulate = 1) {
  const bool leader = threadIdx.x % 128 == 0;
  int32_t scale_d = accumulate;
  auto issue = [&]() {
    hopper::mbar_wait(&smem.full[state.stage()], state.phase());
    const uint64_t desc_a =
        hopper::smem_desc_sw128(smem.a[state.stage()] + warpgroup * 64 * kTileK * 2);
    const uint64_t desc_b = hopper::smem_desc_sw128(smem.b[state.stage()]);
    hopper::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kTileK / 16; ++kk) {
      wgmma_ss<kN, T>(acc, desc_a + 2 * kk, desc_b + 2 * kk, kk == 0 ? scale_d : 1);
    }
    scale_d = 1;
    hopper::wgmma_commit();
  };
  if (count == 0) return;
  hopper::wgmma_fence_operands(acc);
  issue();
  int32_t previous = state.stage();
  state.advance();
  for (int32_t i = 1; i < count; ++i) {
    issue();
    hopper::wgmma_wait<1>();
    if (leader) state.release(&smem.empty[previous]);
    previous = state.stage();
    state.advance();
  }
  hopper::wgmma_wait<0>();
  hopper::wgmma_fence_operands(acc);
  if (leader) state.release(&smem.empty[previous]);
}

}  // namespace flashomni::cuda::gemm
