// FlashOmni CUDA layer (GEMM): the bf16 instantiation of the sparse GEMM kernel.
#include "cuda/gemm/gemm_kernel.cuh"

namespace flashomni::cuda::gemm {

void launch_sparse_gemm_bf16(const GemmKernelParams& p, const CUtensorMap& a_map,
                             const CUtensorMap& b_map, int grid, cudaStream_t stream) {
  launch_sparse_gemm<__nv_bfloat16>(p, a_map, b_map, grid, stream);
}

}  // namespace flashomni::cuda::gemm
