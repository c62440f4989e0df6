// FlashOmni CUDA layer (GEMM): the fp16 instantiation of the sparse GEMM kernel.
#include "cuda/gemm/gemm_kernel.cuh"

namespace flashomni::cuda::gemm {

void launch_sparse_gemm_fp16(const GemmKernelParams& p, const GemmTensorMaps& maps, int grid,
                             cudaStream_t stream) {
  launch_sparse_gemm<__half>(p, maps, grid, stream);
}

}  // namespace flashomni::cuda::gemm
