// Host tests of the policy layer's pooling and pooled logits (steps 1–2) and of run_policy on
// real Q/K: varlen batches, partial blocks, GQA, 16-bit inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "flashomni/numeric.h"
#include "flashomni/policy.h"

namespace flashomni {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(PolicyPool, MeansOverValidTokensAndGqaLogits) {
  // 40 tokens in blocks of 16: counts 16, 16, 8. Four query heads share two kv heads.
  const int n = 40, hq = 4, hk = 2, d = 3;
  std::vector<float> q = random_values(n * hq * d, 1), k = random_values(n * hk * d, 2);
  const SeqLens lens{1, n, n};
  const PooledBlocks qb =
      pool_blocks(make_tensor(q.data(), DType::kFloat32, {1, n, hq, d}), lens, SeqSide::kQuery, 16);
  const PooledBlocks kb =
      pool_blocks(make_tensor(k.data(), DType::kFloat32, {1, n, hk, d}), lens, SeqSide::kKey, 16);
  ASSERT_EQ(qb.blocks, 3);
  EXPECT_EQ(qb.count, (std::vector<int32_t>{16, 16, 8}));
  auto naive_mean = [&](const std::vector<float>& x, int heads, int h, int blk, int c) {
    double s = 0.0;
    const int t1 = std::min(n, 16 * (blk + 1));
    for (int t = 16 * blk; t < t1; ++t) s += x[(t * heads + h) * d + c];
    return s / (t1 - 16 * blk);
  };
  for (int h = 0; h < hq; ++h)
    for (int blk = 0; blk < 3; ++blk)
      for (int c = 0; c < d; ++c)
        EXPECT_NEAR(qb.mean[(h * 3 + blk) * d + c], naive_mean(q, hq, h, blk, c), 1e-12);
  const std::vector<double> p = pooled_logits(qb, kb, 0.5);
  for (int h = 0; h < hq; ++h)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        double dot = 0.0;
        for (int c = 0; c < d; ++c)
          dot += naive_mean(q, hq, h, i, c) * naive_mean(k, hk, h / 2, j, c);
        EXPECT_NEAR(p[(h * 3 + i) * 3 + j], 0.5 * dot, 1e-12) << h << i << j;
      }
  // Default scale 1/sqrt(d).
  const std::vector<double> p1 = pooled_logits(qb, kb, 0.0);
  EXPECT_NEAR(p1[5], p[5] * 2.0 / std::sqrt(3.0), 1e-12);
}

TEST(PolicyPool, AcceptsBf16AndRejectsBadShapes) {
  const int n = 32, h = 2, d = 4;
  std::vector<float> x = random_values(n * h * d, 3);
  std::vector<uint16_t> xb(x.size());
  for (size_t i = 0; i < x.size(); ++i) xb[i] = float_to_bf16(x[i]);
  const SeqLens lens{1, n, n};
  const PooledBlocks a = pool_blocks(make_tensor(xb.data(), DType::kBFloat16, {1, n, h, d}), lens,
                                     SeqSide::kQuery, 16);
  double expect = 0.0;
  for (int t = 0; t < 16; ++t) expect += bf16_to_float(xb[t * h * d]);
  EXPECT_NEAR(a.mean[0], expect / 16, 1e-12);
  EXPECT_THROW(pool_blocks(make_tensor(x.data(), DType::kFloat32, {1, n - 1, h, d}), lens,
                           SeqSide::kQuery, 16),
               Error);
  EXPECT_THROW(
      pool_blocks(make_tensor(x.data(), DType::kFloat32, {n, h, d}), lens, SeqSide::kQuery, 16),
      Error);
  EXPECT_THROW(
      pool_blocks(make_tensor(x.data(), DType::kFloat32, {1, n, h, d}), lens, SeqSide::kQuery, 0),
      Error);
}

TEST(PolicyPool, PartialBlocksCarryTheirShareOfMass) {
  // Equal logits over blocks of 16, 16 and 8 tokens: masses .4, .4, .2 with token weighting, a
  // third each without. Threshold 1.0 * (10/20)^2 = 0.25 skips the partial block only when
  // weighted.
  SymbolShape shape{1, 1, 3, 3, 16, 16};
  const SeqLens lens{1, 40, 40};
  const std::vector<double> logits(9, 0.0);
  PolicyConfig c;
  c.num_steps = 20;
  c.tau_kv = 1.0;
  c.cache_queries = false;
  PolicyResult r = choose_symbols(logits, shape, lens, {}, 10, c);
  EXPECT_FALSE(r.symbols.kv(0, 0, 0, 2));
  EXPECT_TRUE(r.symbols.kv(0, 0, 0, 0) && r.symbols.kv(0, 0, 0, 1));
  // FLOPs kept per row: 16 * 32 of 16 * 40 (rows 0, 1) and 8 * 32 of 8 * 40: 0.8 overall.
  EXPECT_NEAR(r.density.token_pair.overall, 0.8, 1e-12);
  c.weight_by_tokens = false;
  r = choose_symbols(logits, shape, lens, {}, 10, c);
  EXPECT_TRUE(r.symbols.kv(0, 0, 0, 2));
}

// A varlen batch decides exactly as each request alone (the per-request text range included).
TEST(PolicyPool, VarlenMatchesEachRequestAlone) {
  const int h = 2, d = 8, block = 16;
  const int32_t cu[3] = {0, 80, 130};
  const int total = cu[2];
  std::vector<float> q = random_values(total * h * d, 4), k = random_values(total * h * d, 5);
  // Make attention peaked so that something is skipped: k = q + small noise.
  for (size_t i = 0; i < k.size(); ++i) k[i] = 3.0f * q[i] + 0.1f * k[i];
  PolicyParams p;
  p.q = make_tensor(q.data(), DType::kFloat32, {total, h, d});
  p.k = make_tensor(k.data(), DType::kFloat32, {total, h, d});
  p.seqlens = SeqLens{2, 80, 80, cu, cu};
  p.block_q = p.block_kv = block;
  p.text = {text_last(80, 16), text_last(50, 20)};
  p.step = 40;
  p.config.tau_q = 1.0;
  p.config.tau_kv = 0.5;
  const PolicyResult all = run_policy(p);
  ASSERT_EQ(all.symbols.shape().q_blocks, 5);
  int decided = 0;
  for (int b = 0; b < 2; ++b) {
    const int len = cu[b + 1] - cu[b];
    PolicyParams one = p;
    one.q = make_tensor(q.data() + cu[b] * h * d, DType::kFloat32, {1, len, h, d});
    one.k = make_tensor(k.data() + cu[b] * h * d, DType::kFloat32, {1, len, h, d});
    one.seqlens = SeqLens{1, len, len};
    one.text = {p.text[b]};
    const PolicyResult r = run_policy(one);
    const int nb = (len + block - 1) / block;
    for (int hh = 0; hh < h; ++hh)
      for (int i = 0; i < nb; ++i) {
        EXPECT_EQ(all.symbols.query(b, hh, i), r.symbols.query(0, hh, i)) << b << hh << i;
        decided += !r.symbols.query(0, hh, i);
        for (int j = 0; j < nb; ++j) {
          EXPECT_EQ(all.symbols.kv(b, hh, i, j), r.symbols.kv(0, hh, i, j));
          decided += !r.symbols.kv(0, hh, i, j);
        }
      }
  }
  EXPECT_GT(decided, 0);
  // Request 1 has 4 blocks: the padded row/column of the grid stays 0 (validated by the stats).
  for (int hh = 0; hh < h; ++hh) EXPECT_FALSE(all.symbols.query(1, hh, 4));
}

}  // namespace
}  // namespace flashomni
