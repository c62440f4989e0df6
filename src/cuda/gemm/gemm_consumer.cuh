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
// kTall (a tall GEMM-Q item, kTallItem; kN = 128): the warpgroup reduces its own row tile's 128
// rows, warpgroup 0 from the A buffer and warpgroup 1 from the second half of the B buffer, both
// against the one head box, as two m64n128 chains into acc[0, 64) (rows 0-63) and acc[64, 128)
// (rows 64-127): 8 wgmma a k-block where a whole tile issues 4 m64n256.
template <int kN, typename T, typename Smem, bool kTall = false>
__device__ __forceinline__ void consume_k_blocks(float (&acc)[128], int32_t count,
                                                 int32_t warpgroup, Smem& smem,
                                                 PipelineState<Smem::kStages>& state,
                                                 int32_t accumulate = 1) {
  static_assert(!kTall || kN == 128, "a tall item is one 128-column head");
  const bool leader = threadIdx.x % 128 == 0;
  int32_t scale_d = accumulate;
  auto issue = [&]() {
    hopper::mbar_wait(&smem.full[state.stage()], state.phase());
    const uint64_t desc_b = hopper::smem_desc_sw128(smem.b[state.stage()]);
    hopper::wgmma_fence();
    if constexpr (kTall) {
      constexpr int kRowTileBytes = kTileM * kTileK * 2;
      const uint8_t* rows =
          warpgroup == 0 ? smem.a[state.stage()] : smem.b[state.stage()] + kRowTileBytes;
      const uint64_t desc_lo = hopper::smem_desc_sw128(rows);
      const uint64_t desc_hi = hopper::smem_desc_sw128(rows + kRowTileBytes / 2);
#pragma unroll
      for (int kk = 0; kk < kTileK / 16; ++kk) {
        wgmma_m64n128<T, 0>(acc, desc_lo + 2 * kk, desc_b + 2 * kk, 1);
        wgmma_m64n128<T, 64>(acc, desc_hi + 2 * kk, desc_b + 2 * kk, 1);
      }
    } else {
      const uint64_t desc_a =
          hopper::smem_desc_sw128(smem.a[state.stage()] + warpgroup * 64 * kTileK * 2);
#pragma unroll
      for (int kk = 0; kk < kTileK / 16; ++kk) {
        wgmma_ss<kN, T>(acc, desc_a + 2 * kk, desc_b + 2 * kk, kk == 0 ? scale_d : 1);
      }
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
