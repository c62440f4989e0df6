// FlashOmni CUDA layer: sparse_attention launcher (placeholder until the sm_90a kernel lands).
#include "flashomni/cuda_ops.h"

namespace flashomni::cuda {

std::size_t sparse_attention_workspace_size(const AttentionParams&) { return 0; }

void sparse_attention(const AttentionParams&, void*, std::size_t, void*) {
  fail_unsupported("sparse_attention: the CUDA kernel is not built yet");
}

}  // namespace flashomni::cuda
