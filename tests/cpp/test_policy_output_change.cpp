// Host tests of the output-change query score (QueryScore::kOutputChange, policy.h): the formula
// of output_change_scores and the caching decisions it drives, on hand-built attention outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "flashomni/engine.h"
#include "flashomni/policy.h"

namespace flashomni {
namespace {

constexpr int kBlock = 16, kDim = 8;

// Uniform [1, blocks * 16, heads, 8] fp32 outputs of two update steps, with hand-set changes.
struct Outputs {
  int heads, blocks;
  std::vector<float> prev, now;
  Outputs(int h, int n) : heads(h), blocks(n) {
    const size_t size = static_cast<size_t>(n) * kBlock * h * kDim;
    prev.resize(size);
    for (size_t e = 0; e < size; ++e) prev[e] = 0.5f + 0.25f * static_cast<float>(e % 7);
    now = prev;
  }
  // Scales the difference now - prev of (h, block) to `rel` times prev: change exactly `rel`.
  void set_change(int h, int blk, float rel) {
    for (int t = blk * kBlock; t < (blk + 1) * kBlock; ++t) {
      for (int c = 0; c < kDim; ++c) {
        const size_t e = (static_cast<size_t>(t) * heads + h) * kDim + c;
        now[e] = prev[e] * (1.0f + rel);
      }
    }
  }
  TensorRef ref(std::vector<float>& v) {
    return make_tensor(v.data(), DType::kFloat32, {1, blocks * kBlock, heads, kDim});
  }
  SeqLens seqlens() const { return SeqLens{1, blocks * kBlock, blocks * kBlock}; }
};

std::set<int> cached(const Symbols& s, int b, int h) {
  std::set<int> out;
  for (int i = 0; i < s.shape().q_blocks; ++i) {
    if (!s.query(b, h, i)) out.insert(i);
  }
  return out;
}

// Step 10 of 20: phi = 0.25, so tau_q = 1 caches a cumulative normalised change up to 0.25.
PolicyConfig by_change(double tau_q = 1.0) {
  PolicyConfig c;
  c.tau_q = tau_q;
  c.num_steps = 20;
  c.skip_kv = false;
  c.query_score = QueryScore::kOutputChange;
  return c;
}

// Logits are unused by the query decisions under kOutputChange: all blocks equally likely.
PolicyResult choose(Outputs& o, const PolicyConfig& c, const std::vector<TextRange>& text) {
  const SymbolShape shape{1, o.heads, o.blocks, o.blocks, kBlock, kBlock};
  const std::vector<double> logits(static_cast<size_t>(o.heads) * o.blocks * o.blocks, 0.0);
  const std::vector<double> change =
      output_change_scores(o.ref(o.now), o.ref(o.prev), o.seqlens(), kBlock);
  return choose_symbols(logits, shape, o.seqlens(), text, 10, c, &change);
}

TEST(PolicyOutputChange, ScoreIsTheRelativeL2ChangeOfTheBlock) {
  Outputs o(2, 3);
  o.set_change(0, 1, 0.5f);   // now = 1.5 prev: ||now - prev|| / ||prev|| = 0.5
  o.set_change(1, 2, -1.0f);  // now = 0: relative change 1
  const std::vector<double> r =
      output_change_scores(o.ref(o.now), o.ref(o.prev), o.seqlens(), kBlock);
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[0], 0.0);
  EXPECT_NEAR(r[1], 0.5, 1e-7);
  EXPECT_EQ(r[2], 0.0);
  EXPECT_EQ(r[3], 0.0);
  EXPECT_EQ(r[4], 0.0);
  EXPECT_NEAR(r[5], 1.0, 1e-12);
  // A zero previous output divides by the epsilon only.
  std::vector<float> zeros(o.prev.size(), 0.0f);
  const std::vector<double> z = output_change_scores(o.ref(o.now), o.ref(zeros), o.seqlens(), 16);
  EXPECT_GT(z[0], 1e11);
}

TEST(PolicyOutputChange, UnchangedBlockIsCachedFirstAndTextNever) {
  Outputs o(1, 5);  // block 0 is text (unchanged: would rank first if it could be cached)
  o.set_change(0, 1, 0.30f);
  o.set_change(0, 2, 0.0f);
  o.set_change(0, 3, 0.05f);
  o.set_change(0, 4, 0.65f);
  // Normalised: 0.3, 0, 0.05, 0.65 -> ascending 2 (0), 3 (0.05), 1 (0.35 > 0.25 stops).
  const PolicyResult r = choose(o, by_change(), {text_first(kBlock)});
  EXPECT_EQ(cached(r.symbols, 0, 0), (std::set<int>{2, 3}));
  // A tighter threshold (0.0125 < 0.05) caches only the unchanged block.
  EXPECT_EQ(cached(choose(o, by_change(0.05), {text_first(kBlock)}).symbols, 0, 0),
            (std::set<int>{2}));
  // Text anywhere is never cached, even unchanged: here block 2 holds one text token (and the
  // unchanged block 0 is image now: cached first).
  EXPECT_EQ(cached(choose(o, by_change(), {TextRange{40, 41}}).symbols, 0, 0),
            (std::set<int>{0, 3}));
}

TEST(PolicyOutputChange, HeadsAreRankedIndependently) {
  Outputs o(2, 4);
  o.set_change(0, 1, 0.0f);
  o.set_change(0, 2, 0.1f);
  o.set_change(0, 3, 0.9f);
  o.set_change(1, 1, 0.9f);
  o.set_change(1, 2, 0.1f);
  o.set_change(1, 3, 0.0f);
  const PolicyResult r = choose(o, by_change(), {text_first(kBlock)});
  EXPECT_EQ(cached(r.symbols, 0, 0), (std::set<int>{1, 2}));
  EXPECT_EQ(cached(r.symbols, 0, 1), (std::set<int>{2, 3}));
  // Scaling one head's changes leaves both heads' decisions as they were (normalised per head).
  o.set_change(1, 1, 0.09f);
  o.set_change(1, 2, 0.01f);
  EXPECT_EQ(cached(choose(o, by_change(), {text_first(kBlock)}).symbols, 0, 1),
            (std::set<int>{2, 3}));
}

TEST(PolicyOutputChange, NoTextCachesImageBlocksAndAllUnchangedCachesAll) {
  Outputs o(1, 3);
  o.set_change(0, 0, 0.5f);
  EXPECT_EQ(cached(choose(o, by_change(), {}).symbols, 0, 0), (std::set<int>{1, 2}));
  Outputs same(1, 3);
  EXPECT_EQ(cached(choose(same, by_change(), {}).symbols, 0, 0), (std::set<int>{0, 1, 2}));
}

TEST(PolicyOutputChange, RunPolicyNeedsOutNowAndCachesNothingWithoutPrev) {
  Outputs o(2, 4);
  o.set_change(0, 2, 0.1f);
  std::vector<float> q(o.prev.size(), 0.25f);
  PolicyParams p;
  p.q = make_tensor(q.data(), DType::kFloat32, {1, 4 * kBlock, 2, kDim});
  p.k = p.q;
  p.seqlens = o.seqlens();
  p.block_q = p.block_kv = kBlock;
  p.text = {text_first(kBlock)};
  p.step = 10;
  p.config = by_change();
  try {
    run_policy(p);
    ADD_FAILURE() << "expected an error naming out_now";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("out_now"), std::string::npos) << e.what();
  }
  p.out_now = o.ref(o.now);
  EXPECT_EQ(run_policy(p).density.query.overall, 1.0);  // first update: nothing cached
  p.out_prev = o.ref(o.prev);
  const PolicyResult r = run_policy(p);
  // Head 0: blocks 1 and 3 unchanged (0), block 2 all the change -> 1 and 3 cached; head 1
  // unchanged everywhere: every image block cached.
  EXPECT_EQ(cached(r.symbols, 0, 0), (std::set<int>{1, 3}));
  EXPECT_EQ(cached(r.symbols, 0, 1), (std::set<int>{1, 2, 3}));
  // The text-image score on the same call ignores the outputs.
  p.config.query_score = QueryScore::kTextImage;
  EXPECT_NO_THROW(run_policy(p));
  // Mismatched shapes name the argument.
  std::vector<float> small(o.prev.size() / 2);
  p.config.query_score = QueryScore::kOutputChange;
  p.out_prev = make_tensor(small.data(), DType::kFloat32, {1, 4 * kBlock, 1, kDim});
  EXPECT_THROW(run_policy(p), Error);
}

TEST(PolicyOutputChange, VarlenMatchesEachRequestAlone) {
  Outputs a(2, 3), b(2, 2);
  a.set_change(0, 1, 0.2f);
  a.set_change(1, 2, 0.7f);
  b.set_change(0, 0, 0.4f);
  b.set_change(1, 1, 0.1f);
  std::vector<float> now = a.now, prev = a.prev;
  now.insert(now.end(), b.now.begin(), b.now.end());
  prev.insert(prev.end(), b.prev.begin(), b.prev.end());
  const int32_t cu[3] = {0, 3 * kBlock, 5 * kBlock};
  SeqLens s{2, 3 * kBlock, 3 * kBlock, cu, cu};
  const int64_t total = 5 * kBlock;
  const std::vector<double> r =
      output_change_scores(make_tensor(now.data(), DType::kFloat32, {total, 2, kDim}),
                           make_tensor(prev.data(), DType::kFloat32, {total, 2, kDim}), s, kBlock);
  const std::vector<double> ra = output_change_scores(a.ref(a.now), a.ref(a.prev), a.seqlens(), 16);
  const std::vector<double> rb = output_change_scores(b.ref(b.now), b.ref(b.prev), b.seqlens(), 16);
  ASSERT_EQ(r.size(), 12u);  // [2, 2, 3]
  for (int h = 0; h < 2; ++h) {
    for (int i = 0; i < 3; ++i) EXPECT_EQ(r[h * 3 + i], ra[h * 3 + i]);
    for (int i = 0; i < 2; ++i) EXPECT_EQ(r[6 + h * 3 + i], rb[h * 2 + i]);
    EXPECT_EQ(r[6 + h * 3 + 2], 0.0);  // past request 1's end
  }
}

// The engine hands the policy this and the previous update's outputs: the first policy run (no
// previous update) caches nothing; with unchanged activations every image block is cached next.
TEST(PolicyOutputChange, EngineComparesTheLastTwoUpdates) {
  constexpr int kN = 64, kH = 2, kD = 16;
  std::vector<float> q(kN * kH * kD), k(q.size()), v(q.size()), out(q.size());
  for (size_t e = 0; e < q.size(); ++e) {
    q[e] = std::sin(0.37f * e);
    k[e] = std::cos(0.11f * e);
    v[e] = std::sin(0.05f * e + 1.0f);
  }
  EngineConfig cfg;
  cfg.schedule = ScheduleConfig{10, 1, 3, true};  // updates 0, 3, 6, 9
  cfg.policy.query_score = QueryScore::kOutputChange;
  cfg.policy.tau_q = 0.5;
  cfg.reuse_below = 0.0;
  cfg.block_q = cfg.block_kv = 16;
  LayerEngine engine(cfg, cpu_attention_backend());
  AttentionParams p;
  p.q = make_tensor(q.data(), DType::kFloat32, {1, kN, kH, kD});
  p.k = make_tensor(k.data(), DType::kFloat32, {1, kN, kH, kD});
  p.v = make_tensor(v.data(), DType::kFloat32, {1, kN, kH, kD});
  p.out = make_tensor(out.data(), DType::kFloat32, {1, kN, kH, kD});
  ASSERT_TRUE(engine.run_step(0, p, {text_first(16)}).policy_ran);
  EXPECT_EQ(engine.density().query.overall, 1.0);
  engine.run_step(1, p, {text_first(16)});
  ASSERT_TRUE(engine.run_step(3, p, {text_first(16)}).policy_ran);
  EXPECT_EQ(engine.density().query.overall, 0.25);  // only the text block of each head active
  // reset() forgets the previous output: the next first update caches nothing again.
  engine.reset();
  ASSERT_TRUE(engine.run_step(0, p, {text_first(16)}).policy_ran);
  EXPECT_EQ(engine.density().query.overall, 1.0);
}

}  // namespace
}  // namespace flashomni
