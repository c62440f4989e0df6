// FlashOmni CUDA layer: gemm_q / gemm_o launchers (placeholder until the sm_90a kernels land).
#include "flashomni/cuda_ops.h"

namespace flashomni::cuda {

std::size_t gemm_q_workspace_size(const GemmQParams&) { return 0; }
void gemm_q(const GemmQParams&, void*, std::size_t, void*) {
  fail_unsupported("gemm_q: the CUDA kernel is not built yet");
}

std::size_t gemm_o_workspace_size(const GemmOParams&) { return 0; }
void gemm_o_update(const GemmOParams&, void*, std::size_t, void*) {
  fail_unsupported("gemm_o_update: the CUDA kernel is not built yet");
}
void gemm_o_dispatch(const GemmOParams&, void*, std::size_t, void*) {
  fail_unsupported("gemm_o_dispatch: the CUDA kernel is not built yet");
}

}  // namespace flashomni::cuda
