// FlashOmni CUDA layer: the symbol policy (policy.h) and the Taylor forecast (forecast.h) on the
// GPU. Same semantics as the CPU oracle: pool -> pooled logits -> per-row key skipping -> per-head
// query caching, all in fp64, written straight into caller-owned DEVICE symbol words. No host
// synchronisation, no allocation (the workspace size depends only on shapes), so an update step
// can be captured in a CUDA graph. Only defined when built with CUDA (FLASHOMNI_WITH_CUDA).
//
// Decisions equal the CPU run_policy bit for bit except where the fp64 exp / log of the CUDA math
// library and glibc differ (both within 1 ulp): a key / query block whose cumulative mass lies
// within a few ulps of the threshold, or two block probabilities within an ulp of each other, may
// be decided differently. Every sum runs in the oracle's order with no fused multiply-add.
//
// Example (FLUX-like layer on the GPU, 512 text tokens first, step 20 of 50):
//   PolicyDeviceParams p;
//   p.q = q; p.k = k;                       // CUDA [B, N, H, d], [B, N, Hkv, d]
//   p.text = {text_first(512)};
//   p.step = 20; p.config.num_steps = 50;
//   const SymbolShape s = cuda::policy_symbol_shape(p);  // words: s.q_size(), s.kv_size()
//   p.q_bits = q_words; p.kv_bits = kv_words;            // device buffers of those sizes
//   cuda::run_policy(p, ws, cuda::policy_workspace_size(p), stream);
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "flashomni/forecast.h"
#include "flashomni/policy.h"
#include "flashomni/symbols_stats.h"

namespace flashomni {

// Host-given text ranges travel inside the launch (no copy): at most this many (one per request).
inline constexpr int32_t kMaxHostTextRanges = 64;
// Largest q_blocks / kv_blocks the GPU policy sorts in shared memory (512K tokens at block 128).
inline constexpr int32_t kMaxPolicyBlocks = 4096;

struct PolicyDeviceParams {
  TensorRef q;  // CUDA [B, Nq, H, d] (uniform) or [total_q, H, d] (varlen); fp32/fp16/bf16/fp64
  TensorRef k;  // CUDA [B, Nkv, Hkv, d] or [total_kv, Hkv, d], same dtype
  TensorRef cu_seqlens_q, cu_seqlens_kv;        // varlen: CUDA int32 [B + 1] (values trusted)
  int32_t max_seqlen_q = 0, max_seqlen_kv = 0;  // varlen: the longest request (sizes the symbols)
  int32_t block_q = kDefaultBlockQ;
  int32_t block_kv = kDefaultBlockKV;
  // Text: either host ranges (0, 1 or B entries, validated when the lengths are known on the
  // host) or `text_ranges`, int32 [1 or B, 2] ([begin, end) per request) on the GPU. The GPU
  // clamps ranges to [0, q_len] instead of rejecting them (it cannot report without a sync).
  std::vector<TextRange> text;
  TensorRef text_ranges;
  int32_t step = 0;
  PolicyConfig config;
  // Outputs (device): words of policy_symbol_shape(*this), every word written (padding bits 0).
  uint32_t* q_bits = nullptr;
  uint32_t* kv_bits = nullptr;
  // Optional (device) [B * H] entries ordered (b, h): exactly symbol_densities() of the result.
  SymbolDensity* densities = nullptr;
  // config.query_score == kOutputChange (policy.h, output_change_scores): this and the previous
  // update's attention outputs, CUDA, q's layout with any dv, each fp32/fp16/bf16/fp64, same
  // shape. out_now is required then; out_prev absent (the first update) caches nothing. The
  // workspace then also holds 8 * B * H * nQ * (2 * dv + 1) bytes of column sums and scores.
  TensorRef out_now;
  TensorRef out_prev;
};

namespace cuda {

// The symbol shape run_policy writes: q_blocks / kv_blocks from the longest request.
SymbolShape policy_symbol_shape(const PolicyDeviceParams& p);

// Device bytes run_policy needs; depends only on B, H, Hkv, d, the block counts and (output
// change with both outputs given) dv: see PolicyDeviceParams::out_now. About
// 8 * (B * (H * nQ + Hkv * nK) * d + B * H * nQ * (nK + 3)) bytes: 27 MB at N = 33792, H = 24.
std::size_t policy_workspace_size(const PolicyDeviceParams& p);
// Enqueues the policy on `stream` (a cudaStream_t; null = legacy default stream).
void run_policy(const PolicyDeviceParams& p, void* workspace, std::size_t workspace_bytes,
                void* stream);

// out = sum_p w_p history_p elementwise, w from check_forecast (host arithmetic on the steps).
// Contiguous CUDA tensors of fp32 / fp16 / bf16 (each history value and out may differ in
// dtype); the sum runs in fp64 in the CPU's order, so fp32 inputs give bit-identical results.
void forecast(const ForecastParams& p, void* stream);

}  // namespace cuda
}  // namespace flashomni
