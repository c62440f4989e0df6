// FlashOmni core: arguments of sparse_attention (spec §2), shared by the CPU and CUDA backends.
#pragma once

#include <cstdint>

#include "flashomni/symbols.h"
#include "flashomni/tensor.h"

namespace flashomni {

// Layouts (strides in elements, last dim contiguous):
//   uniform batch: q/out [B, Nq, H, d], k/v [B, Nkv, Hkv, d], lse float32 [B, H, Nq]
//   varlen       : q/out [total_q, H, d], k/v [total_kv, Hkv, d], lse float32 [H, total_q],
//                  cu_seqlens_q/kv int32 [B + 1] (on the tensors' device), max_seqlen_* given.
// H % Hkv == 0 (GQA: kv head of query head h is h / (H / Hkv)). dtypes: q, k, v, out share one of
// bf16 / fp16 (fp32 also accepted by the CPU backend). lse optional.
// symbols == nullptr means dense. Cached (b, h, i): rows of out and lse are not written.
// A row with no kept key: out = 0, lse = -inf.
struct AttentionParams {
  TensorRef q, k, v, out, lse;
  TensorRef cu_seqlens_q, cu_seqlens_kv;  // int32 [B + 1], varlen only
  int32_t max_seqlen_q = 0;               // varlen only
  int32_t max_seqlen_kv = 0;              // varlen only
  float softmax_scale = 0.0f;             // 0 means 1 / sqrt(d)
  const SymbolsRef* symbols = nullptr;
};

// Derived, validated description used by backends.
struct AttentionProblem {
  int32_t batch = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int32_t max_seqlen_q = 0, max_seqlen_kv = 0;
  bool varlen = false;
  float softmax_scale = 0.0f;
};

// Checks every argument (shapes, dtypes, strides, alignment, symbol shape) and returns the
// problem; throws fail_argument naming the argument. `read_symbols` also checks out-of-range bits
// (host symbols only).
AttentionProblem check_attention(const AttentionParams& p, Device device);

namespace cpu {
// Multithreaded oracle: fp64 accumulation for fp32/fp64 storage semantics, exact spec §2.
void sparse_attention(const AttentionParams& p);
}  // namespace cpu

}  // namespace flashomni
