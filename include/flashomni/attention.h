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
// problem; throws fail_argument naming the argument. Rules (src/core/check_attention.cpp):
//  - q.ndim selects the mode: 4 = uniform batch (cu_seqlens must not be given), 3 = varlen.
//  - every tensor on `device`, strides >= 0, last dim contiguous, element-aligned data; CUDA also
//    needs 16-byte aligned q/k/v/out data and 16-byte multiple strides (TMA), head_dim 64/128/256
//    and bf16/fp16 (the CPU takes fp32/fp64 too and any head_dim >= 1).
//  - varlen: cu_seqlens int32 [B + 1]; on the CPU they are read and must start at 0, be
//    non-decreasing and end within the packed tensors, and max_seqlen_q/kv must EQUAL the longest
//    request (the symbol grid is sized from it); CUDA checks shapes only and trusts the values.
//  - softmax_scale finite and >= 0; the problem carries the resolved (float) scale.
//  - symbols on `device`; CPU: validate_symbols (reads out-of-range bits), CUDA:
//    validate_symbol_shape with the max lengths.
AttentionProblem check_attention(const AttentionParams& p, Device device);

namespace cpu {
// Multithreaded oracle, exact spec §2: inputs read as stored, every product and sum in double,
// one rounding at the store (softmax scale = the float value in the problem). Threads:
// FLASHOMNI_NUM_THREADS, else hardware_concurrency(). Validates with check_attention first.
void sparse_attention(const AttentionParams& p);
}  // namespace cpu

}  // namespace flashomni
