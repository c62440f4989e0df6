// FlashOmni CUDA layer: sparse_attention launcher — validates the call, plans on the stream (GPU
// work list in the caller's workspace) and runs the sm_90a kernel instantiation for the dtype and
// head dim. No host synchronisation, no allocation: capturable in a CUDA graph.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/attention/attention_dispatch.h"
#include "cuda/attention/attention_plan.h"
#include "cuda/runtime.h"
#include "flashomni/cuda_ops.h"

namespace flashomni::cuda {
namespace {

using attention::AttentionGeometry;
using attention::AttentionRunArgs;

// Candidate (b, h, i) rows: the padded symbol grid B x H x ceil(max_seqlen_q / 128).
int64_t candidate_items(const AttentionProblem& prob) {
  const int64_t q_blocks =
      (static_cast<int64_t>(prob.max_seqlen_q) + attention::kBlockM - 1) / attention::kBlockM;
  return static_cast<int64_t>(prob.batch) * prob.heads * q_blocks;
}

void check_supported(const AttentionParams& p, const AttentionProblem& prob) {
  if (prob.head_dim != 64 && prob.head_dim != 128) {
    fail_unsupported("sparse_attention (CUDA): head_dim must be 64 or 128, got ", prob.head_dim);
  }
  if (p.symbols != nullptr) {
    const SymbolShape& s = p.symbols->shape;
    if (s.block_q != attention::kBlockM || s.block_kv != attention::kBlockN) {
      fail_unsupported("sparse_attention (CUDA): symbols.block_q and symbols.block_kv must be ",
                       attention::kBlockM, " (the kernel tile), got ", s.block_q, " and ",
                       s.block_kv);
    }
  }
  FLASHOMNI_CHECK_ARG(
      candidate_items(prob) <= (int64_t{1} << 29), "q",
      "too many (batch, head, query block) items for one call: ", candidate_items(prob));
}

// A dim of extent <= 1 may carry any stride (check_layout allows it) but TMA needs a legal one:
// substitute the span of the faster dims (a multiple of 16 bytes for head dims 64 / 128).
int64_t tma_stride(int64_t extent, int64_t stride, int64_t fallback) {
  return extent > 1 ? stride : fallback;
}

}  // namespace

std::size_t sparse_attention_workspace_size(const AttentionParams& p) {
  const AttentionProblem prob = check_attention(p, Device::kCUDA);
  return attention::plan_workspace_bytes(candidate_items(prob));
}

void sparse_attention(const AttentionParams& p, void* workspace, std::size_t workspace_bytes,
                      void* stream) {
  const AttentionProblem prob = check_attention(p, Device::kCUDA);
  check_supported(p, prob);
  if (!device_is_sm90()) {
    fail_unsupported("sparse_attention (CUDA): the kernels are built for sm_90a (Hopper) only");
  }
  const int64_t items = candidate_items(prob);
  const std::size_t need = attention::plan_workspace_bytes(items);
  FLASHOMNI_CHECK_ARG(workspace_bytes >= need, "workspace_bytes",
                      "expected at least sparse_attention_workspace_size() = ", need, ", got ",
                      workspace_bytes);
  FLASHOMNI_CHECK_ARG(workspace != nullptr, "workspace", "must not be null (", need,
                      " bytes needed)");
  if (items == 0) return;

  const int d = prob.head_dim;
  AttentionGeometry geo;
  geo.batch = prob.batch;
  geo.heads = prob.heads;
  geo.kv_heads = prob.kv_heads;
  geo.seqlen_q = prob.max_seqlen_q;
  geo.seqlen_kv = prob.max_seqlen_kv;
  geo.q_blocks = (prob.max_seqlen_q + attention::kBlockM - 1) / attention::kBlockM;
  geo.kv_blocks = (prob.max_seqlen_kv + attention::kBlockN - 1) / attention::kBlockN;
  geo.q_words = (geo.q_blocks + 31) / 32;
  geo.kv_words = (geo.kv_blocks + 31) / 32;
  if (prob.varlen) {
    geo.cu_seqlens_q = p.cu_seqlens_q.ptr<const int32_t>();
    geo.cu_seqlens_kv = p.cu_seqlens_kv.ptr<const int32_t>();
  }
  if (p.symbols != nullptr) {
    geo.q_bits = p.symbols->q_bits;
    geo.kv_bits = p.symbols->kv_bits;
  }

  AttentionRunArgs a;
  a.q = p.q.data;
  a.k = p.k.data;
  a.v = p.v.data;
  a.out = p.out.data;
  a.lse = p.lse.defined() ? p.lse.ptr<float>() : nullptr;
  a.softmax_scale = prob.softmax_scale;
  a.geo = geo;
  // Uniform batch: [B, N, H, d]; varlen: [total, H, d] (batch stride unused).
  const int o = prob.varlen ? 0 : 1;
  auto strides = [&](const TensorRef& t, int64_t& batch, int64_t& row, int64_t& head) {
    const int64_t rows = t.shape[o], heads = t.shape[o + 1];
    head = tma_stride(heads, t.stride[o + 1], d);
    row = tma_stride(rows, t.stride[o], heads * d);
    batch = prob.varlen ? rows * row : tma_stride(t.shape[0], t.stride[0], rows * row);
  };
  strides(p.q, a.q_batch_stride, a.q_row_stride, a.q_head_stride);
  strides(p.k, a.k_batch_stride, a.k_row_stride, a.k_head_stride);
  strides(p.v, a.v_batch_stride, a.v_row_stride, a.v_head_stride);
  strides(p.out, a.out_batch_stride, a.out_row_stride, a.out_head_stride);
  if (a.lse != nullptr) {
    if (prob.varlen) {  // [H, total_q]
      a.lse_head_stride = p.lse.stride[0];
      a.lse_row_stride = p.lse.stride[1];
    } else {  // [B, H, Nq]
      a.lse_batch_stride = p.lse.stride[0];
      a.lse_head_stride = p.lse.stride[1];
      a.lse_row_stride = p.lse.stride[2];
    }
  }
  a.total_q = static_cast<int32_t>(p.q.shape[o]);
  // An empty k/v (every request with 0 keys) still needs a legal TMA extent; nothing is loaded.
  a.total_kv = static_cast<int32_t>(std::max<int64_t>(1, p.k.shape[o]));
  a.ctas = static_cast<int32_t>(std::min<int64_t>(sm_count(), items));
  a.stream = static_cast<cudaStream_t>(stream);

  const attention::PlanWorkspace ws = attention::carve_plan_workspace(workspace, items);
  a.items = ws.items;
  a.num_items = ws.num_items;
  a.next_item = ws.next_item;
  attention::launch_attention_planner(geo, ws, attention::planner_window_rows(geo.q_blocks, a.ctas),
                                      a.stream);

  const bool bf16 = p.q.dtype == DType::kBFloat16;
  if (d == 64) {
    bf16 ? attention::run_sparse_attention_bf16_hd64(a)
         : attention::run_sparse_attention_fp16_hd64(a);
  } else {
    bf16 ? attention::run_sparse_attention_bf16_hd128(a)
         : attention::run_sparse_attention_fp16_hd128(a);
  }
}

}  // namespace flashomni::cuda
