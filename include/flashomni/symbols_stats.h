// FlashOmni core: host statistics of a set of symbols — how much of attention/GEMM-Q/GEMM-O work a
// layer's symbols keep, per (request, head) and summarised over the layer. Used by policies, the
// engine's logs and the benchmarks (the token-weighted pair density is the attention FLOP
// fraction).
#pragma once

#include <cstdint>
#include <vector>

#include "flashomni/symbols.h"

namespace flashomni {

// Counts and densities of one (b, h). "Valid" means inside the request's own block counts
// nQ = ceil(q_len / block_q), nK = ceil(kv_len / block_kv). A density whose denominator is 0
// (empty request, or no active query block for kv_density) is reported as 0.
struct SymbolDensity {
  int32_t b = 0, h = 0;
  int32_t valid_q_blocks = 0;    // nQ
  int32_t valid_kv_blocks = 0;   // nK
  int32_t active_q_blocks = 0;   // Sq = 1
  int64_t kept_pairs = 0;        // (i, j) with Sq[i] = 1 and Skv[i, j] = 1
  int64_t active_q_tokens = 0;   // query tokens of active blocks (the last block may be partial)
  int64_t kept_token_pairs = 0;  // sum over kept pairs of tokens(i) * tokens(j)
  int64_t q_tokens = 0, kv_tokens = 0;

  double query_density = 0.0;        // active_q_blocks / nQ
  double query_token_density = 0.0;  // active_q_tokens / q_tokens: GEMM-Q FLOP fraction
  double kv_density = 0.0;           // kept_pairs / (active_q_blocks * nK): sparsity of live rows
  double pair_density = 0.0;         // kept_pairs / (nQ * nK)
  double token_pair_density = 0.0;   // kept_token_pairs / (q_tokens * kv_tokens): attention FLOPs
};

// One density over a layer: mean/min/max over the (b, h) entries that have work (nQ * nK > 0;
// kv over those with an active query block), and `overall`, the ratio of the summed counts (for
// token_pair that is the FLOP fraction of the whole layer, longer requests weighing more).
struct DensityStat {
  double mean = 0.0, min = 0.0, max = 0.0, overall = 0.0;
  int64_t count = 0;  // entries the mean/min/max are over
};

struct SymbolDensitySummary {
  DensityStat query, query_token, kv, pair, token_pair;
};

// Validates the symbols (validate_symbols) and returns B * H entries ordered (b, h).
std::vector<SymbolDensity> symbol_densities(const SymbolsRef& symbols, const SeqLens& seqlens);
SymbolDensitySummary summarize_densities(const std::vector<SymbolDensity>& densities);
// Both in one call.
SymbolDensitySummary symbol_density_summary(const SymbolsRef& symbols, const SeqLens& seqlens);

}  // namespace flashomni
