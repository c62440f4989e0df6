// Host tests of the policy layer's decisions on hand-built pooled logits (policy.h, step 3).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "flashomni/policy.h"

namespace flashomni {
namespace {

constexpr double kTiny = -40.0;  // logit of a block with ~0 mass (exp(-40) ~ 4e-18)

struct Grid {
  SymbolShape shape;
  SeqLens seqlens;
  std::vector<double> logits;
  Grid(int heads, int blocks, int block = 16) {
    shape = SymbolShape{1, heads, blocks, blocks, block, block};
    seqlens = SeqLens{1, blocks * block, blocks * block};
    logits.assign(static_cast<size_t>(heads) * blocks * blocks, kTiny);
  }
  double& at(int h, int i, int j) {
    return logits[(static_cast<size_t>(h) * shape.q_blocks + i) * shape.kv_blocks + j];
  }
};

std::set<int> skipped(const Symbols& s, int h, int i) {
  std::set<int> out;
  for (int j = 0; j < s.shape().kv_blocks; ++j) {
    if (!s.kv(0, h, i, j)) out.insert(j);
  }
  return out;
}

std::set<int> cached(const Symbols& s, int h) {
  std::set<int> out;
  for (int i = 0; i < s.shape().q_blocks; ++i) {
    if (!s.query(0, h, i)) out.insert(i);
  }
  return out;
}

// phi = (10 / 20)^2 = 0.25: thresholds are tau / 4.
PolicyConfig kv_only(double tau_kv) {
  PolicyConfig c;
  c.tau_kv = tau_kv;
  c.num_steps = 20;
  c.cache_queries = false;
  return c;
}

TEST(Policy, PhiUsesTheRealStepCount) {
  EXPECT_DOUBLE_EQ(policy_phi(0, 50), 0.0);
  EXPECT_DOUBLE_EQ(policy_phi(10, 20), 0.25);
  EXPECT_DOUBLE_EQ(policy_phi(25, 100), 0.0625);
  EXPECT_DOUBLE_EQ(policy_phi(27, 28), (27.0 / 28.0) * (27.0 / 28.0));
  EXPECT_THROW(policy_phi(20, 20), Error);
  EXPECT_THROW(policy_phi(-1, 20), Error);
  EXPECT_THROW(policy_phi(0, 0), Error);
}

TEST(Policy, SkipsTheSmallestMassPrefix) {
  // Row masses (0.25, 0.05, 0.60, 0.10); threshold 0.8 * 0.25 = 0.2: cumulative 0.05, 0.15 fit,
  // 0.40 does not, so blocks 1 and 3 are skipped.
  Grid g(1, 4);
  const double mass[4] = {0.25, 0.05, 0.60, 0.10};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) g.at(0, i, j) = std::log(mass[j]);
  const PolicyResult r = choose_symbols(g.logits, g.shape, g.seqlens, {}, 10, kv_only(0.8));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(skipped(r.symbols, 0, i), (std::set<int>{1, 3}));
  EXPECT_DOUBLE_EQ(r.density.kv.overall, 0.5);
  EXPECT_DOUBLE_EQ(r.density.query.overall, 1.0);
  // Threshold 0.56 * 0.25 = 0.14: 0.05 fits, 0.05 + 0.10 does not.
  const PolicyResult r2 = choose_symbols(g.logits, g.shape, g.seqlens, {}, 10, kv_only(0.56));
  EXPECT_EQ(skipped(r2.symbols, 0, 0), (std::set<int>{1}));
  // Step 0: phi = 0, nothing with positive mass is skipped.
  const PolicyResult r0 = choose_symbols(g.logits, g.shape, g.seqlens, {}, 0, kv_only(0.8));
  EXPECT_TRUE(skipped(r0.symbols, 0, 0).empty());
}

TEST(Policy, AlwaysKeepsTheMostProbableBlock) {
  Grid g(1, 5);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) g.at(0, i, j) = 0.01 * ((i + 2 * j) % 5);  // near-uniform
  const PolicyResult r = choose_symbols(g.logits, g.shape, g.seqlens, {}, 10, kv_only(1e6));
  for (int i = 0; i < 5; ++i) {
    const std::set<int> s = skipped(r.symbols, 0, i);
    ASSERT_EQ(s.size(), 4u) << i;
    int best = 0;
    for (int j = 1; j < 5; ++j) best = g.at(0, i, j) > g.at(0, i, best) ? j : best;
    EXPECT_EQ(s.count(best), 0u) << i;
  }
}

TEST(Policy, TopKKeepsTheKLargest) {
  Grid g(1, 6);
  const double logit[6] = {0.3, -1.0, 2.0, 0.1, 1.5, -0.2};
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) g.at(0, i, j) = logit[j];
  PolicyConfig c = kv_only(0.0);
  c.kv_top_k = 2;
  PolicyResult r = choose_symbols(g.logits, g.shape, g.seqlens, {}, 10, c);
  EXPECT_EQ(skipped(r.symbols, 0, 3), (std::set<int>{0, 1, 3, 5}));
  c.kv_top_k = 10;  // more than there are: nothing skipped
  r = choose_symbols(g.logits, g.shape, g.seqlens, {}, 10, c);
  EXPECT_TRUE(skipped(r.symbols, 0, 3).empty());
}

TEST(Policy, KeepDiagonalAndTextKeys) {
  // Block 0 is text; every row puts its mass on block 5. Without the options everything but 5
  // is skipped (image rows); keep_diagonal re-adds j = i, keep_text_kv re-adds j = 0.
  Grid g(1, 6);
  for (int i = 0; i < 6; ++i) g.at(0, i, 5) = 0.0;
  PolicyConfig c = kv_only(4.0);  // threshold 1.0: all but the max
  const std::vector<TextRange> text = {text_first(16)};
  PolicyResult r = choose_symbols(g.logits, g.shape, g.seqlens, text, 10, c);
  EXPECT_EQ(skipped(r.symbols, 0, 2), (std::set<int>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(skipped(r.symbols, 0, 0).empty()) << "text rows keep every key by default";
  c.keep_diagonal = true;
  c.keep_text_kv = true;
  r = choose_symbols(g.logits, g.shape, g.seqlens, text, 10, c);
  EXPECT_EQ(skipped(r.symbols, 0, 2), (std::set<int>{1, 3, 4}));
  c.skip_kv_for_text = true;
  r = choose_symbols(g.logits, g.shape, g.seqlens, text, 10, c);
  EXPECT_EQ(skipped(r.symbols, 0, 0), (std::set<int>{1, 2, 3, 4}));
}

// Text block 0, image blocks 1..4 with importance w[i]: the text row puts mass ~w[i] on block i,
// image row i puts w[i] : 1 on (text, itself). Then t2i ~ w / sum(w) and i2t[i] = w / (w + 1).
void fill_importance(Grid& g, int h, const double w[5]) {
  g.at(h, 0, 0) = 0.0;
  for (int i = 1; i < 5; ++i) {
    g.at(h, 0, i) = std::log(w[i]);
    g.at(h, i, 0) = std::log(w[i]);
    g.at(h, i, i) = 0.0;
  }
}

TEST(Policy, EachHeadCachesByItsOwnScores) {
  // Head 0 ranks image blocks 1 < 2 < 3 < 4, head 1 the reverse. Scores c (head 0):
  // t2i = (.1, .2, .3, .4), i2t = (1/2, 2/3, 3/4, 4/5) / 2.7167 = (.184, .245, .276, .294),
  // c = (.142, .223, .288, .347). tau_q 1.2 * phi 0.25 = 0.3 caches one block per head, 1.6
  // (0.4) two. Ranking every head by head 0's order (the reference's bug) caches {1} in head 1.
  Grid g(2, 5);
  const double up[5] = {0, 1, 2, 3, 4}, down[5] = {0, 4, 3, 2, 1};
  fill_importance(g, 0, up);
  fill_importance(g, 1, down);
  PolicyConfig c;
  c.num_steps = 20;
  c.skip_kv = false;
  const std::vector<TextRange> text = {text_first(16)};
  c.tau_q = 1.2;
  PolicyResult r = choose_symbols(g.logits, g.shape, g.seqlens, text, 10, c);
  EXPECT_EQ(cached(r.symbols, 0), (std::set<int>{1}));
  EXPECT_EQ(cached(r.symbols, 1), (std::set<int>{4}));
  c.tau_q = 1.6;
  r = choose_symbols(g.logits, g.shape, g.seqlens, text, 10, c);
  EXPECT_EQ(cached(r.symbols, 0), (std::set<int>{1, 2}));
  EXPECT_EQ(cached(r.symbols, 1), (std::set<int>{3, 4}));
  EXPECT_DOUBLE_EQ(r.density.query.overall, 0.6);
  c.tau_q = 1e6;  // everything that may be cached is: the text block never is
  r = choose_symbols(g.logits, g.shape, g.seqlens, text, 10, c);
  EXPECT_EQ(cached(r.symbols, 0), (std::set<int>{1, 2, 3, 4}));
}

TEST(Policy, ImageToTextScoreReadsTheTextKeys) {
  // Text query block 0 spreads evenly over image blocks (t2i uniform), so i2t decides. Image
  // block i puts mass m[i] = (.5, .1, .3, .2) on the text key block and the rest on image block
  // 5 - i. Block 2 (least text mass) must be cached first, then 4. A score read from the image
  // key columns (the reference's indexing) would rank block 1 (only 0.5 elsewhere) lowest.
  Grid g(1, 5);
  const double m[5] = {0, 0.5, 0.1, 0.3, 0.2};
  for (int j = 0; j < 5; ++j) g.at(0, 0, j) = 0.0;
  for (int i = 1; i < 5; ++i) {
    g.at(0, i, 0) = std::log(m[i]);
    g.at(0, i, 5 - i) = std::log(1.0 - m[i]);
  }
  PolicyConfig c;
  c.num_steps = 20;
  c.skip_kv = false;
  // i2t normalised: (.5, .1, .3, .2) / 1.1 -> c = (.352, .170, .261, .216); 0.2 fits only block 2
  // and 0.4 blocks 2 and 4.
  c.tau_q = 0.8;
  PolicyResult r = choose_symbols(g.logits, g.shape, g.seqlens, {text_first(16)}, 10, c);
  EXPECT_EQ(cached(r.symbols, 0), (std::set<int>{2}));
  c.tau_q = 1.6;
  r = choose_symbols(g.logits, g.shape, g.seqlens, {text_first(16)}, 10, c);
  EXPECT_EQ(cached(r.symbols, 0), (std::set<int>{2, 4}));
}

TEST(Policy, NoTextMeansNoCaching) {
  Grid g(1, 4);
  PolicyConfig c;
  c.num_steps = 20;
  c.tau_q = 1e6;
  const PolicyResult r = choose_symbols(g.logits, g.shape, g.seqlens, {}, 19, c);
  EXPECT_TRUE(cached(r.symbols, 0).empty());
}

// Text at the front (blocks 0..1) or the back (blocks 4..5) of the same content: every decision
// must move with its block.
TEST(Policy, TextLastMirrorsTextFirst) {
  const int n = 6, heads = 3;
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.0, 1.5);
  Grid first(heads, n), last(heads, n);
  auto to_last = [&](int i) { return i < 2 ? i + 4 : i - 2; };  // text-first index -> text-last
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        last.at(h, to_last(i), to_last(j)) = first.at(h, i, j) = normal(rng);
  PolicyConfig c;
  c.num_steps = 30;
  c.tau_q = 1.5;
  c.tau_kv = 0.6;
  const PolicyResult a =
      choose_symbols(first.logits, first.shape, first.seqlens, {text_first(32)}, 20, c);
  const PolicyResult b =
      choose_symbols(last.logits, last.shape, last.seqlens, {text_last(96, 32)}, 20, c);
  int n_cached = 0, n_skipped = 0;
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(a.symbols.query(0, h, i), b.symbols.query(0, h, to_last(i))) << h << " " << i;
      n_cached += !a.symbols.query(0, h, i);
      for (int j = 0; j < n; ++j) {
        EXPECT_EQ(a.symbols.kv(0, h, i, j), b.symbols.kv(0, h, to_last(i), to_last(j)));
        n_skipped += !a.symbols.kv(0, h, i, j);
      }
    }
  EXPECT_GT(n_cached, 0);  // the comparison is not vacuous
  EXPECT_GT(n_skipped, 0);
  EXPECT_DOUBLE_EQ(a.density.token_pair.overall, b.density.token_pair.overall);
}

TEST(Policy, ThresholdScalesWithTheGivenStepCount) {
  // Same logits, phi = (10 / 20)^2 = (20 / 40)^2 = 0.25 vs (10 / 50)^2 = 0.04.
  Grid g(1, 8);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 8; ++j) g.at(0, i, j) = 0.1 * j;
  PolicyConfig c = kv_only(0.8);
  const PolicyResult s20 = choose_symbols(g.logits, g.shape, g.seqlens, {}, 10, c);
  c.num_steps = 40;
  const PolicyResult s40 = choose_symbols(g.logits, g.shape, g.seqlens, {}, 20, c);
  c.num_steps = 50;
  const PolicyResult s50 = choose_symbols(g.logits, g.shape, g.seqlens, {}, 10, c);
  EXPECT_EQ(s20.symbols.kv_bits(), s40.symbols.kv_bits());
  // Masses e^{0.1 j} / 11.65 = .086, .095, .105, ...: 0.8 * 0.25 = 0.2 fits two blocks,
  // 0.8 * 0.04 = 0.032 none.
  EXPECT_EQ(skipped(s20.symbols, 0, 0), (std::set<int>{0, 1}));
  EXPECT_TRUE(skipped(s50.symbols, 0, 0).empty());
}

TEST(Policy, RejectsBadArguments) {
  Grid g(1, 4);
  PolicyConfig c;
  EXPECT_THROW(choose_symbols(g.logits, g.shape, g.seqlens, {TextRange{0, 80}}, 5, c), Error);
  EXPECT_THROW(choose_symbols(g.logits, g.shape, g.seqlens, {TextRange{10, 5}}, 5, c), Error);
  EXPECT_THROW(choose_symbols(g.logits, g.shape, g.seqlens, {}, 50, c), Error);
  std::vector<double> short_logits(3, 0.0);
  EXPECT_THROW(choose_symbols(short_logits, g.shape, g.seqlens, {}, 5, c), Error);
  g.at(0, 1, 2) = NAN;
  EXPECT_THROW(choose_symbols(g.logits, g.shape, g.seqlens, {}, 5, c), Error);
  Grid cross(1, 4);
  cross.seqlens.seqlen_kv = 48;  // cross attention: caching needs joint attention
  EXPECT_THROW(choose_symbols(cross.logits, cross.shape, cross.seqlens, {}, 5, c), Error);
  c.tau_kv = -1.0;
  EXPECT_THROW(choose_symbols(g.logits, g.shape, g.seqlens, {}, 5, c), Error);
  try {
    choose_symbols(g.logits, g.shape, g.seqlens, {}, 5, c);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tau_kv"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace flashomni
