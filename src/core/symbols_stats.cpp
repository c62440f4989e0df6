// FlashOmni core: per-(request, head) densities of the symbols and their summary over a layer.
#include "flashomni/symbols_stats.h"

#include <algorithm>
#include <bit>

namespace flashomni {
namespace {

double ratio(int64_t num, int64_t den) {
  return den > 0 ? static_cast<double>(num) / static_cast<double>(den) : 0.0;
}

// Accumulates one density: mean/min/max over the entries that count, overall = sum num / sum den.
struct Accumulator {
  DensityStat stat;
  double sum = 0.0;
  int64_t num = 0, den = 0;

  void add(double value, int64_t n, int64_t d, bool counts) {
    num += n;
    den += d;
    if (!counts) return;
    stat.min = stat.count == 0 ? value : std::min(stat.min, value);
    stat.max = stat.count == 0 ? value : std::max(stat.max, value);
    sum += value;
    ++stat.count;
  }
  DensityStat finish() {
    stat.mean = stat.count > 0 ? sum / static_cast<double>(stat.count) : 0.0;
    stat.overall = ratio(num, den);
    return stat;
  }
};

}  // namespace

std::vector<SymbolDensity> symbol_densities(const SymbolsRef& symbols, const SeqLens& seqlens) {
  const SymbolShape& sh = symbols.shape;
  validate_symbols(symbols, seqlens, sh.heads);
  std::vector<SymbolDensity> out;
  out.reserve(static_cast<std::size_t>(sh.batch) * sh.heads);
  for (int32_t b = 0; b < sh.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, sh.block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, sh.block_kv);
    const int64_t q_len = seqlens.q_len(b);
    const int64_t kv_len = seqlens.kv_len(b);
    // Tokens of the last (possibly partial) key block: e.g. 600 keys, block 128 -> 88.
    const int64_t last_kv_tokens = kv_len - static_cast<int64_t>(nk - 1) * sh.block_kv;
    for (int32_t h = 0; h < sh.heads; ++h) {
      SymbolDensity d;
      d.b = b;
      d.h = h;
      d.valid_q_blocks = nq;
      d.valid_kv_blocks = nk;
      d.q_tokens = q_len;
      d.kv_tokens = kv_len;
      for (int32_t i = 0; i < nq; ++i) {
        if (!query_active(symbols, b, h, i)) continue;
        const int64_t q_tokens =
            std::min<int64_t>(sh.block_q, q_len - static_cast<int64_t>(i) * sh.block_q);
        const uint32_t* row = symbols.kv_bits + sh.kv_row_index(b, h, i);
        int64_t kept = 0;
        for (int32_t w = 0; w < sh.kv_words(); ++w) kept += std::popcount(row[w]);
        int64_t kept_tokens = kept * sh.block_kv;
        if (nk > 0 && kv_active(symbols, b, h, i, nk - 1)) {
          kept_tokens -= sh.block_kv - last_kv_tokens;
        }
        ++d.active_q_blocks;
        d.active_q_tokens += q_tokens;
        d.kept_pairs += kept;
        d.kept_token_pairs += q_tokens * kept_tokens;
      }
      d.query_density = ratio(d.active_q_blocks, nq);
      d.query_token_density = ratio(d.active_q_tokens, q_len);
      d.kv_density = ratio(d.kept_pairs, static_cast<int64_t>(d.active_q_blocks) * nk);
      d.pair_density = ratio(d.kept_pairs, static_cast<int64_t>(nq) * nk);
      d.token_pair_density = ratio(d.kept_token_pairs, q_len * kv_len);
      out.push_back(d);
    }
  }
  return out;
}

SymbolDensitySummary summarize_densities(const std::vector<SymbolDensity>& densities) {
  Accumulator query, query_token, kv, pair, token_pair;
  for (const SymbolDensity& d : densities) {
    const int64_t valid_pairs = static_cast<int64_t>(d.valid_q_blocks) * d.valid_kv_blocks;
    const bool has_work = valid_pairs > 0;
    query.add(d.query_density, d.active_q_blocks, d.valid_q_blocks, has_work);
    query_token.add(d.query_token_density, d.active_q_tokens, d.q_tokens, has_work);
    kv.add(d.kv_density, d.kept_pairs, static_cast<int64_t>(d.active_q_blocks) * d.valid_kv_blocks,
           has_work && d.active_q_blocks > 0);
    pair.add(d.pair_density, d.kept_pairs, valid_pairs, has_work);
    token_pair.add(d.token_pair_density, d.kept_token_pairs, d.q_tokens * d.kv_tokens, has_work);
  }
  return SymbolDensitySummary{query.finish(), query_token.finish(), kv.finish(), pair.finish(),
                              token_pair.finish()};
}

SymbolDensitySummary symbol_density_summary(const SymbolsRef& symbols, const SeqLens& seqlens) {
  return summarize_densities(symbol_densities(symbols, seqlens));
}

}  // namespace flashomni
