// FlashOmni policy layer: chooses the sparse symbols (spec §5) from one update step's Q and K.
// Host reference (fp64) written as the data-parallel steps a GPU version runs in the same order:
//   1. pool       qbar/kbar[b, h, block] = mean of the block's valid tokens        (pool_blocks)
//   2. logits     P[b, h, i, j] = scale * <qbar_i, kbar_j> (pooled_logits)
//   3. decisions  per (b, h, i) row: key blocks to skip; per (b, h): query blocks to cache
//                                                                                  (choose_symbols)
// Fixes of the public reference (spec §5): every head is ranked by its own scores; the
// image-to-text score reads the text key columns; S is a parameter; the text range is a parameter
// (text first as in FLUX, last as in HunyuanVideo, or anywhere); any sequence length.
//
// Example (one FLUX-like layer, 512 text tokens first, step 20 of 50):
//   PolicyParams p;
//   p.q = q; p.k = k;                                   // [B, N, H, d], [B, N, Hkv, d]
//   p.seqlens = SeqLens{B, N, N};
//   p.text = {text_first(512)};
//   p.step = 20; p.config.num_steps = 50;
//   PolicyResult r = run_policy(p);                     // r.symbols, r.density.query.overall, ...
#pragma once

#include <cstdint>
#include <vector>

#include "flashomni/symbols.h"
#include "flashomni/symbols_stats.h"
#include "flashomni/tensor.h"

namespace flashomni {

// Text tokens of one request: [begin, end) in tokens from the request's first token.
struct TextRange {
  int32_t begin = 0;
  int32_t end = 0;
  int32_t size() const { return end - begin; }
};
inline TextRange text_first(int32_t n_text) {
  return TextRange{0, n_text};
}
inline TextRange text_last(int32_t seqlen, int32_t n_text) {
  return TextRange{seqlen - n_text, seqlen};
}

// What ranks the query blocks for caching (spec §5, issue 5). Both rank per (b, h), ascending,
// and cache the longest prefix whose cumulative normalised score is <= tau_q * phi(step); blocks
// holding a text token are never cached.
enum class QueryScore : int32_t {
  kTextImage = 0,     // text<->image pooled attention mass (choose_symbols below; the default)
  kOutputChange = 1,  // relative change of the block's attention output (output_change_scores)
};

struct PolicyConfig {
  double tau_q = 0.5;          // query caching: fraction of the query score's mass to cache
  double tau_kv = 0.15;        // key skipping: fraction of each row's softmax mass allowed to drop
  int32_t num_steps = 50;      // S in phi(s) = (s / S)^2: the sampler's real step count
  int32_t kv_top_k = 0;        // > 0: keep the k most probable key blocks per row instead of tau_kv
  bool cache_queries = true;   // false: every query block active (Sq all 1)
  bool skip_kv = true;         // false: every key block kept (Skv all 1)
  bool keep_diagonal = false;  // always keep the key blocks overlapping the query block's tokens
  bool keep_text_kv = false;   // always keep the key blocks that hold text tokens
  bool skip_kv_for_text = false;  // false (as the reference): text query blocks keep every key
  // true: block probabilities weight each key block by its valid token count (a partial last
  // block of 40 tokens carries 40/128 of a full block's mass); identical to the plain softmax of
  // P when every block is full.
  bool weight_by_tokens = true;
  float softmax_scale = 0.0f;                       // 0 means 1 / sqrt(head_dim)
  QueryScore query_score = QueryScore::kTextImage;  // query-caching score
};

// phi(s) = (s / S)^2 with s the 0-based step index, S = num_steps.
double policy_phi(int32_t step, int32_t num_steps);

// Which side of the attention a tensor is (selects q or kv lengths / offsets of SeqLens).
enum class SeqSide { kQuery, kKey };

// Checks a host per-token tensor against one side of `seqlens`: [B, N, H, d] (uniform) or
// [total, H, d] (varlen), fp32/fp64/fp16/bf16, CPU, last dim contiguous; names `name` (and
// cu_seqlens_q / cu_seqlens_kv) on error. Shared by pooling and the output-change score.
void check_token_tensor(const TensorRef& x, const char* name, const SeqLens& seqlens, SeqSide side);

// Checks a PolicyConfig and the step against it (tau_q, tau_kv, softmax_scale finite and >= 0,
// kv_top_k >= 0, num_steps > 0, 0 <= step < num_steps); shared by the CPU and CUDA policies.
void check_policy_config(const PolicyConfig& config, int32_t step);

// Step 1 output: per-block means, fp64.
struct PooledBlocks {
  int32_t batch = 0, heads = 0, blocks = 0, head_dim = 0, block = 0;
  std::vector<double> mean;    // [batch, heads, blocks, head_dim]; 0 past a request's end
  std::vector<int32_t> count;  // [batch, blocks] valid tokens of each block (0 past the end)
};

// x: [B, N, H, d] (uniform) or [total, H, d] (varlen: seqlens.cu_seqlens_* are host offsets);
// fp32/fp64/fp16/bf16, CPU. Block `blk` of request b covers tokens [blk * block, (blk+1) * block).
PooledBlocks pool_blocks(const TensorRef& x, const SeqLens& seqlens, SeqSide side, int32_t block);

// Step 2: P[b, h, i, j] = scale * <qbar[b,h,i], kbar[b, h / (H / Hkv), j]>, -inf where block i
// or j holds no valid token. Returns [B, H, q_blocks, kv_blocks]. scale <= 0 means 1/sqrt(d).
std::vector<double> pooled_logits(const PooledBlocks& q, const PooledBlocks& k, double scale);

struct PolicyResult {
  Symbols symbols;
  // Densities of `symbols` (symbols_stats.h); `.overall` of query / kv / token_pair are the
  // layer's query density, kv density among computed rows, and attention FLOP fraction.
  SymbolDensitySummary density;
};

// Step 3, on given logits (tests feed hand-built ones). shape: the symbol shape for `seqlens`
// (symbol_shape_for); logits: [B, H, q_blocks, kv_blocks], entries of invalid blocks ignored.
// text: one range for every request, or one per request (empty = no text).
//
// Per (b, h), with A[i, :] = softmax over the request's valid key blocks j of
// P[i, j] + log(n_j / block_kv) (weight_by_tokens) or of P[i, j]:
// - Key skipping, per row i (every row; kernels read it only where Sq = 1): sort A[i, :] ascending
//   (ties: lower j first), skip the longest prefix whose cumulative mass is <= tau_kv * phi(step);
//   the most probable block is always kept, then keep_diagonal / keep_text_kv re-add blocks.
//   kv_top_k > 0 instead keeps the k most probable blocks (ties: higher j kept). Rows of text
//   query blocks keep every key unless skip_kv_for_text.
// - Query caching, per (b, h) over image blocks (no text token, at least one valid token); a block
//   holding any text token is never cached. For image block i:
//     t2i[i] = sum_t w_t sum_j A[t, j] o[i, j] / sum_t w_t   (mass text queries put on i's tokens)
//     i2t[i] = sum_j A[i, j] x_j                              (mass i puts on text keys)
//   with t over query blocks holding text, w_t their text token count, o[i, j] the fraction of key
//   block j's valid tokens lying inside query block i's token range (1/0 when block_q == block_kv),
//   x_j the fraction of key block j's valid tokens that are text. Each is normalised over the image
//   blocks, c[i] = (t2i[i] / sum t2i + i2t[i] / sum i2t) / 2 (a part whose sum is 0 is dropped; if
//   both are, nothing is cached). Sort c ascending (ties: lower i first) and cache the longest
//   prefix whose cumulative c is <= tau_q * phi(step). Needs seqlen_q == seqlen_kv (joint
//   attention) unless cache_queries is false.
//
// config.query_score == kOutputChange replaces c[i] above by the block's output change:
//   c[i] = r[i] / sum_x r[x] over the request's image blocks x (every c[i] = 0 if that sum is 0:
//   unchanged outputs are all cached), r = output_change [B, H, q_blocks] (output_change_scores).
// It needs no text (without text every valid block is an image block). output_change == nullptr
// (no previous update's output: the first update) caches nothing. Same sort and prefix rule.
PolicyResult choose_symbols(const std::vector<double>& logits, const SymbolShape& shape,
                            const SeqLens& seqlens, const std::vector<TextRange>& text,
                            int32_t step, const PolicyConfig& config);
PolicyResult choose_symbols(const std::vector<double>& logits, const SymbolShape& shape,
                            const SeqLens& seqlens, const std::vector<TextRange>& text,
                            int32_t step, const PolicyConfig& config,
                            const std::vector<double>* output_change);

// Guards r[i] below against an all-zero previous output (r is then ||O_now|| / 1e-12, huge).
inline constexpr double kOutputChangeEps = 1e-12;

// Relative output change of each query block, [B, H, q_blocks] fp64 (0 past a request's end):
//   n_c = sum_t (now[t, c] - prev[t, c])^2,  p_c = sum_t prev[t, c]^2   (t ascending over the
//         block's valid tokens [i * block_q, min(len, (i + 1) * block_q)), every term in fp64)
//   r[b, h, i] = sqrt(sum_c n_c) / (sqrt(sum_c p_c) + kOutputChangeEps)        (c ascending)
// i.e. ||O_now - O_prev||_2 / (||O_prev||_2 + eps) over the block's tokens and head dims. The
// GPU sums in this order too, so both give the same bits. out_now / out_prev: the attention
// outputs of this and the previous update step, [B, Nq, H, dv] (uniform) or [total_q, H, dv]
// (varlen: seqlens.cu_seqlens_q host offsets), same shape, each fp32/fp64/fp16/bf16, CPU.
std::vector<double> output_change_scores(const TensorRef& out_now, const TensorRef& out_prev,
                                         const SeqLens& seqlens, int32_t block_q);

struct PolicyParams {
  TensorRef q;      // [B, N, H, d] or [total, H, d]
  TensorRef k;      // [B, N, Hkv, d] or [total, Hkv, d]
  SeqLens seqlens;  // host offsets when varlen
  int32_t block_q = kDefaultBlockQ;
  int32_t block_kv = kDefaultBlockKV;
  std::vector<TextRange> text;  // one for all requests, one per request, or empty
  int32_t step = 0;             // 0-based index of the update step the policy runs at
  PolicyConfig config;
  // config.query_score == kOutputChange: this and the previous update step's attention outputs
  // (output_change_scores). out_now is required then; out_prev absent means there is no previous
  // update yet (the first one) and nothing is cached.
  TensorRef out_now;
  TensorRef out_prev;
};

// Steps 1–3 in order (with output_change_scores for kOutputChange).
PolicyResult run_policy(const PolicyParams& p);

}  // namespace flashomni
