// FlashOmni CUDA layer (policy): the plain-data launch parameters every policy kernel reads, the
// workspace layout, and the kernel launchers (policy_pool.cu, policy_choose.cu). Internal.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "flashomni/common.h"
#include "flashomni/policy.h"
#include "flashomni/policy_cuda.h"
#include "flashomni/symbols_stats.h"

namespace flashomni::cuda::policy {

// One side (Q or K) of the pooling: element strides of the packed tensor.
struct PoolSide {
  const void* data = nullptr;
  int64_t stride_batch = 0;  // uniform: batch stride; varlen: unused
  int64_t stride_token = 0;
  int64_t stride_head = 0;
  int32_t heads = 0;
  int32_t blocks = 0;  // padded block count (longest request)
  int32_t block = 0;
  int32_t seqlen = 0;           // uniform length
  const int32_t* cu = nullptr;  // varlen offsets (device), else null
  int32_t vector = 1;           // elements per load: 16-byte vectors when aligned, else 1
  double* mean = nullptr;       // [B, heads, blocks, d] fp64 (workspace)
};

// One attention output of QueryScore::kOutputChange: element strides of [B, N, H, dv] or
// [total, H, dv] (stride_batch unused when varlen; the offsets are q's).
struct OutputSide {
  const void* data = nullptr;
  DType dtype = DType::kFloat32;
  int64_t stride_batch = 0, stride_token = 0, stride_head = 0;
};

// The output-change scores (policy_change.cu): r[b, h, i] as output_change_scores (policy.h).
struct ChangeKernelParams {
  OutputSide now, prev;
  int32_t batch = 0, heads = 0, dim = 0, blocks = 0, block = 0, seqlen = 0;
  const int32_t* cu = nullptr;  // varlen q offsets (device), else null
  double* parts = nullptr;      // [B, H, blocks, dim, 2] per-column sums (workspace)
  double* change = nullptr;     // [B, H, blocks] (workspace)
};

struct PolicyKernelParams {
  DType dtype = DType::kBFloat16;
  int32_t batch = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int32_t q_blocks = 0, kv_blocks = 0, block_q = 0, block_kv = 0;
  PoolSide q, k;

  // Text: host ranges inline (text_count 0, 1 or B), or a device int32 [R, 2] tensor.
  int32_t text_count = 0;
  TextRange text_host[kMaxHostTextRanges];
  const int32_t* text_dev = nullptr;
  int32_t text_dev_rows = 0;
  int64_t text_dev_stride0 = 0, text_dev_stride1 = 0;

  double scale = 0.0;         // resolved softmax scale
  double kv_threshold = 0.0;  // tau_kv * phi(step)
  double q_threshold = 0.0;   // tau_q * phi(step)
  // log(n_last / block_kv) of a uniform batch's partial last key block, from the host's log
  // (the oracle's); varlen requests take the device log (see policy_cuda.h).
  double uniform_last_log_weight = 0.0;
  int32_t kv_top_k = 0;
  bool cache_queries = true, skip_kv = true, keep_diagonal = false, keep_text_kv = false;
  bool skip_kv_for_text = false, weight_by_tokens = true;
  // QueryScore::kOutputChange: rank query blocks by `change` ([B, H, nQ], null = no previous
  // output: nothing cached) instead of the text<->image scores.
  bool by_change = false;
  const double* change = nullptr;

  // Workspace.
  double* logits = nullptr;        // [B, H, nQ, nK]: pooled logits, then A rows of text blocks
  double* i2t = nullptr;           // [B, H, nQ] mass each image row puts on text keys
  int32_t* kept = nullptr;         // [B, H, nQ] kept key blocks per row
  int64_t* kept_tokens = nullptr;  // [B, H, nQ] kept key tokens per row

  // Outputs.
  uint32_t* q_bits = nullptr;
  uint32_t* kv_bits = nullptr;
  SymbolDensity* densities = nullptr;
};

// Byte offsets of the workspace regions (256-byte aligned) and the total.
struct WorkspaceLayout {
  std::size_t q_mean = 0, k_mean = 0, logits = 0, i2t = 0, kept = 0, kept_tokens = 0;
  std::size_t change_parts = 0, change = 0, total = 0;  // empty unless change_dim > 0
};
// change_dim: dv of the outputs when the output-change scores run, else 0.
WorkspaceLayout workspace_layout(int32_t batch, int32_t heads, int32_t kv_heads, int32_t head_dim,
                                 int32_t q_blocks, int32_t kv_blocks, int32_t change_dim = 0);

// Steps 1-2 (policy_pool.cu): block means of Q and K, then the pooled logits.
void launch_pool_and_logits(const PolicyKernelParams& p, cudaStream_t stream);
// Output-change scores (policy_change.cu), before step 3 when QueryScore::kOutputChange.
void launch_output_change(const ChangeKernelParams& p, cudaStream_t stream);
// Step 3 (policy_choose.cu): per-row key decisions, then per-(b, h) query decisions + densities.
void launch_choose(const PolicyKernelParams& p, cudaStream_t stream);

}  // namespace flashomni::cuda::policy
