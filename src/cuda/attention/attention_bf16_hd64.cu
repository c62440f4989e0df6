// FlashOmni CUDA layer: sparse attention instantiation for bf16, head dim 64 (one translation
// unit per instantiation so they compile in parallel).
#include "cuda/attention/attention_kernel.cuh"

namespace flashomni::cuda::attention {

void run_sparse_attention_bf16_hd64(const AttentionRunArgs& args) {
  launch_sparse_attention<AttentionTraits<cutlass::bfloat16_t, 64>>(args);
}

}  // namespace flashomni::cuda::attention
