// Host tests of the symbol statistics on hand-computed cases.
#include <gtest/gtest.h>

#include <vector>

#include "flashomni/symbols_stats.h"
#include "test_symbols_util.h"

namespace flashomni {
namespace {

using testing::SeqCase;

// 300 queries (blocks of 128, 128, 44 tokens), 200 keys (blocks of 128, 72 tokens), H = 2.
// Head 0 dense; head 1: Sq = {1, 0, 1}, Skv rows {j=1}, {0, 1} (cached row, ignored), {0, 1}.
Symbols hand_case(const SeqLens& sl) {
  Symbols s = dense_symbols(sl, 2);
  s.set_query(0, 1, 1, false);
  s.set_kv(0, 1, 0, 0, false);
  return s;
}

TEST(SymbolsStats, HandComputedDensities) {
  const SeqCase c(1, 300, 200);
  const Symbols s = hand_case(c.seqlens);
  const std::vector<SymbolDensity> d = symbol_densities(s.ref(), c.seqlens);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].h, 0);
  EXPECT_DOUBLE_EQ(d[0].query_density, 1.0);
  EXPECT_DOUBLE_EQ(d[0].query_token_density, 1.0);
  EXPECT_DOUBLE_EQ(d[0].kv_density, 1.0);
  EXPECT_DOUBLE_EQ(d[0].pair_density, 1.0);
  EXPECT_DOUBLE_EQ(d[0].token_pair_density, 1.0);
  EXPECT_EQ(d[0].kept_token_pairs, 300 * 200);

  const SymbolDensity& h1 = d[1];
  EXPECT_EQ(h1.valid_q_blocks, 3);
  EXPECT_EQ(h1.valid_kv_blocks, 2);
  EXPECT_EQ(h1.active_q_blocks, 2);
  EXPECT_EQ(h1.kept_pairs, 3);  // row 0 keeps 1, row 2 keeps 2
  EXPECT_EQ(h1.active_q_tokens, 128 + 44);
  EXPECT_EQ(h1.kept_token_pairs, 128 * 72 + 44 * 200);  // 9216 + 8800 = 18016
  EXPECT_DOUBLE_EQ(h1.query_density, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(h1.query_token_density, 172.0 / 300.0);
  EXPECT_DOUBLE_EQ(h1.kv_density, 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(h1.pair_density, 3.0 / 6.0);
  EXPECT_DOUBLE_EQ(h1.token_pair_density, 18016.0 / 60000.0);

  const SymbolDensitySummary sum = summarize_densities(d);
  EXPECT_EQ(sum.query.count, 2);
  EXPECT_DOUBLE_EQ(sum.query.mean, (1.0 + 2.0 / 3.0) / 2.0);
  EXPECT_DOUBLE_EQ(sum.query.min, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(sum.query.max, 1.0);
  EXPECT_DOUBLE_EQ(sum.query.overall, 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(sum.kv.overall, (6.0 + 3.0) / (6.0 + 4.0));
  EXPECT_DOUBLE_EQ(sum.pair.overall, (6.0 + 3.0) / 12.0);
  EXPECT_DOUBLE_EQ(sum.token_pair.overall, (60000.0 + 18016.0) / 120000.0);
  EXPECT_DOUBLE_EQ(sum.token_pair.min, 18016.0 / 60000.0);
  const SymbolDensitySummary direct = symbol_density_summary(s.ref(), c.seqlens);
  EXPECT_DOUBLE_EQ(direct.token_pair.mean, sum.token_pair.mean);
}

TEST(SymbolsStats, EmptyRequestsAndIdleHeadsAreLeftOutOfTheMean) {
  // Request 0 is empty; request 1 has 256 queries (2 blocks) and 64 keys (1 block), H = 2, and
  // head 1 of request 1 has every query block cached.
  const SeqCase c({0, 256}, {0, 64});
  Symbols s = dense_symbols(c.seqlens, 2);
  s.set_query(1, 1, 0, false);
  s.set_query(1, 1, 1, false);
  const std::vector<SymbolDensity> d = symbol_densities(s.ref(), c.seqlens);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].valid_q_blocks, 0);
  EXPECT_DOUBLE_EQ(d[0].query_density, 0.0);
  EXPECT_DOUBLE_EQ(d[0].token_pair_density, 0.0);
  EXPECT_DOUBLE_EQ(d[3].query_density, 0.0);
  EXPECT_DOUBLE_EQ(d[3].kv_density, 0.0);  // no live row
  const SymbolDensitySummary sum = summarize_densities(d);
  EXPECT_EQ(sum.query.count, 2);  // the two heads of request 1
  EXPECT_DOUBLE_EQ(sum.query.mean, 0.5);
  EXPECT_DOUBLE_EQ(sum.query.min, 0.0);
  EXPECT_EQ(sum.kv.count, 1);  // only head 0 of request 1 has an active block
  EXPECT_DOUBLE_EQ(sum.kv.mean, 1.0);
  EXPECT_DOUBLE_EQ(sum.token_pair.overall, 0.5);
  EXPECT_EQ(summarize_densities({}).query.count, 0);
}

TEST(SymbolsStats, RejectsInvalidSymbols) {
  const SeqCase c({300, 100}, {300, 100});
  Symbols s = dense_symbols(c.seqlens, 1);
  s.set_query(1, 0, 2, true);
  EXPECT_INVALID(symbol_densities(s.ref(), c.seqlens), "symbols.q_bits", "(b=1, h=0, i=2)");
}

}  // namespace
}  // namespace flashomni
