// FlashOmni CUDA layer: the host-side run arguments of the sparse attention kernel and the four
// compiled instantiations (bf16/fp16 x head dim 64/128) the launcher dispatches to. No CuTe here.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/attention/attention_plan.h"

namespace flashomni::cuda::attention {

// Strides in elements. Uniform batch: q/out [B, N, H, d] and lse [B, H, N]; varlen: q/out
// [total, H, d] and lse [H, total] with batch strides 0 and request offsets from cu_seqlens.
struct AttentionRunArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;  // optional
  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  int64_t out_batch_stride = 0, out_row_stride = 0, out_head_stride = 0;
  int64_t lse_batch_stride = 0, lse_head_stride = 0, lse_row_stride = 0;
  int32_t total_q = 0;   // rows of the q tensor along the sequence axis (N, or total in varlen)
  int32_t total_kv = 0;  // idem for k/v
  float softmax_scale = 0.0f;
  AttentionGeometry geo;
  const WorkItem* items = nullptr;
  const int32_t* num_items = nullptr;
  int32_t* next_item = nullptr;
  int32_t ctas = 0;  // persistent grid: min(#SMs, candidate items)
  cudaStream_t stream = nullptr;
};

void run_sparse_attention_bf16_hd64(const AttentionRunArgs& args);
void run_sparse_attention_bf16_hd128(const AttentionRunArgs& args);
void run_sparse_attention_fp16_hd64(const AttentionRunArgs& args);
void run_sparse_attention_fp16_hd128(const AttentionRunArgs& args);

}  // namespace flashomni::cuda::attention
