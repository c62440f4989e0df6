// Host tests of cpu::sparse_attention (the oracle) against the naive float64 reference: dense and
// random symbols, uniform and varlen batches, GQA, odd block sizes and tails, every storage dtype,
// cached rows left untouched and empty rows giving O = 0, LSE = -inf.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "flashomni/attention.h"
#include "reference.h"
#include "test_cpu_util.h"
#include "test_symbols_util.h"

namespace flashomni {
namespace {

using testing::Buffer;
using testing::storage_tol;

// Exactly representable in every dtype and far from any attention output (|O| <= max |v| = 1).
constexpr double kOutSentinel = -7.25;
constexpr float kLseSentinel = 1234.5f;

struct Case {
  DType dtype = DType::kFloat64;
  bool varlen = false;
  std::vector<int32_t> q_lens, kv_lens;  // uniform: one entry per request, all equal
  int heads = 2, kv_heads = 2, head_dim = 32;
  bool packed_qkv = false;  // q, k, v as strided views of one [tokens, 3, H, d] buffer
  float softmax_scale = 0.0f;
  bool with_lse = true;
};

// Storage, reference inputs and the AttentionParams pointing into them.
struct Problem {
  Case c;
  int batch = 0, total_q = 0, total_kv = 0;
  std::vector<int32_t> cu_q, cu_kv;
  std::unique_ptr<Buffer> qkv, q, k, v, out;
  std::vector<float> lse;
  reference::AttentionInput in;
  AttentionParams params;
  SeqLens seqlens;

  explicit Problem(const Case& cs, uint32_t seed) : c(cs) {
    std::mt19937 rng(seed);
    batch = static_cast<int>(c.q_lens.size());
    cu_q = {0};
    cu_kv = {0};
    for (int b = 0; b < batch; ++b) {
      cu_q.push_back(cu_q.back() + c.q_lens[b]);
      cu_kv.push_back(cu_kv.back() + c.kv_lens[b]);
    }
    total_q = cu_q.back();
    total_kv = cu_kv.back();
    const int H = c.heads, Hk = c.kv_heads, d = c.head_dim;
    in.batch = batch;
    in.heads = H;
    in.kv_heads = Hk;
    in.head_dim = d;
    in.cu_q = cu_q;
    in.cu_kv = cu_kv;
    const float scale =
        c.softmax_scale > 0 ? c.softmax_scale : static_cast<float>(1.0 / std::sqrt(d));
    in.scale = scale;  // the oracle uses the float scale the kernels use

    auto shape = [&](int64_t tokens, int64_t h) {
      return c.varlen ? std::vector<int64_t>{tokens, h, d}
                      : std::vector<int64_t>{batch, tokens / batch, h, d};
    };
    auto view = [&](void* data, int64_t tokens, int64_t h, int64_t token_stride) {
      const std::vector<int64_t> s = shape(tokens, h);
      TensorRef t;
      t.data = data;
      t.dtype = c.dtype;
      t.ndim = static_cast<int32_t>(s.size());
      int64_t stride = 1;
      for (int i = t.ndim - 1; i >= 0; --i) {
        t.shape[i] = s[i];
        t.stride[i] = stride;
        stride *= s[i];
      }
      // The token dim is dim 0 (varlen) or 1 (batch); re-stride it and the batch dim.
      const int tok = c.varlen ? 0 : 1;
      t.stride[tok] = token_stride;
      if (!c.varlen) t.stride[0] = token_stride * s[1];
      return t;
    };

    if (c.packed_qkv) {
      // [total, 3, H, d]: the layout of a fused QKV projection (needs H == Hkv and Nq == Nkv).
      qkv = std::make_unique<Buffer>(c.dtype, int64_t{total_q} * 3 * H * d);
      const std::vector<double> all = testing::fill_random(*qkv, rng);
      for (int t = 0; t < total_q; ++t) {
        for (int part = 0; part < 3; ++part) {
          std::vector<double>& dst = part == 0 ? in.q : part == 1 ? in.k : in.v;
          const auto first = all.begin() + (int64_t{t} * 3 + part) * H * d;
          dst.insert(dst.end(), first, first + H * d);
        }
      }
      auto* base = static_cast<char*>(qkv->data());
      const int64_t row = int64_t{H} * d * static_cast<int64_t>(dtype_size(c.dtype));
      params.q = view(base, total_q, H, 3 * H * d);
      params.k = view(base + row, total_kv, Hk, 3 * H * d);
      params.v = view(base + 2 * row, total_kv, Hk, 3 * H * d);
    } else {
      q = std::make_unique<Buffer>(c.dtype, int64_t{total_q} * H * d);
      k = std::make_unique<Buffer>(c.dtype, int64_t{total_kv} * Hk * d);
      v = std::make_unique<Buffer>(c.dtype, int64_t{total_kv} * Hk * d);
      in.q = testing::fill_random(*q, rng);
      in.k = testing::fill_random(*k, rng);
      in.v = testing::fill_random(*v, rng);
      params.q = view(q->data(), total_q, H, H * d);
      params.k = view(k->data(), total_kv, Hk, Hk * d);
      params.v = view(v->data(), total_kv, Hk, Hk * d);
    }
    out = std::make_unique<Buffer>(c.dtype, int64_t{total_q} * H * d, kOutSentinel);
    params.out = view(out->data(), total_q, H, H * d);
    if (c.with_lse) {
      lse.assign(static_cast<size_t>(H) * total_q, kLseSentinel);
      params.lse = c.varlen ? make_tensor(lse.data(), DType::kFloat32, {H, total_q})
                            : make_tensor(lse.data(), DType::kFloat32, {batch, H, total_q / batch});
    }
    params.softmax_scale = c.softmax_scale;
    seqlens.batch = batch;
    if (c.varlen) {
      params.cu_seqlens_q = make_tensor(cu_q.data(), DType::kInt32, {batch + 1});
      params.cu_seqlens_kv = make_tensor(cu_kv.data(), DType::kInt32, {batch + 1});
      params.max_seqlen_q = *std::max_element(c.q_lens.begin(), c.q_lens.end());
      params.max_seqlen_kv = *std::max_element(c.kv_lens.begin(), c.kv_lens.end());
      seqlens.cu_seqlens_q = cu_q.data();
      seqlens.cu_seqlens_kv = cu_kv.data();
    } else {
      seqlens.seqlen_q = c.q_lens[0];
      seqlens.seqlen_kv = c.kv_lens[0];
    }
  }

  // Storage index of lse for (request b, token t of b, head h).
  int64_t lse_index(int b, int t, int h) const {
    return c.varlen ? int64_t{h} * total_q + cu_q[b] + t
                    : (int64_t{b} * c.heads + h) * (total_q / batch) + t;
  }

  // Runs the oracle and checks every row against the reference: written rows within the storage
  // tolerance, cached rows still holding the sentinels. Returns the number of written rows.
  int64_t run_and_check(const Symbols* symbols) {
    SymbolsRef ref;
    if (symbols) ref = symbols->ref();
    params.symbols = symbols ? &ref : nullptr;
    cpu::sparse_attention(params);
    const reference::AttentionOutput r =
        reference::attention(in, reference::expand_symbols(in, symbols));
    const int H = c.heads, d = c.head_dim;
    int64_t written = 0, errors = 0;
    for (int b = 0; b < batch; ++b) {
      for (int t = 0; t < c.q_lens[b]; ++t) {
        const int tq = cu_q[b] + t;
        for (int h = 0; h < H; ++h) {
          const bool w = r.written[int64_t{tq} * H + h];
          written += w;
          for (int x = 0; x < d && errors < 10; ++x) {
            const int64_t i = (int64_t{tq} * H + h) * d + x;
            const double got = out->get(i);
            const double want = w ? r.out[i] : kOutSentinel;
            const double tol = w ? storage_tol(c.dtype, want) : 0.0;
            if (!(std::fabs(got - want) <= tol)) {
              ++errors;
              ADD_FAILURE() << "out b=" << b << " t=" << t << " h=" << h << " c=" << x
                            << (w ? " (computed)" : " (cached)") << ": got " << got << ", want "
                            << want;
            }
          }
          if (!c.with_lse || errors >= 10) continue;
          const double got = lse[lse_index(b, t, h)];
          const double want = w ? r.lse[int64_t{h} * total_q + tq] : double{kLseSentinel};
          const bool ok = std::isinf(want)
                              ? got == want
                              : std::fabs(got - want) <= storage_tol(DType::kFloat32, want);
          if (!ok) {
            ++errors;
            ADD_FAILURE() << "lse b=" << b << " t=" << t << " h=" << h << ": got " << got
                          << ", want " << want;
          }
        }
      }
    }
    return written;
  }
};

Case uniform(DType dtype, int batch, int n_q, int n_kv, int heads, int kv_heads, int d) {
  Case c;
  c.dtype = dtype;
  c.q_lens.assign(batch, n_q);
  c.kv_lens.assign(batch, n_kv);
  c.heads = heads;
  c.kv_heads = kv_heads;
  c.head_dim = d;
  return c;
}

Case varlen(DType dtype, std::vector<int32_t> q_lens, std::vector<int32_t> kv_lens, int heads,
            int kv_heads, int d) {
  Case c = uniform(dtype, 1, 0, 0, heads, kv_heads, d);
  c.varlen = true;
  c.q_lens = std::move(q_lens);
  c.kv_lens = std::move(kv_lens);
  return c;
}

TEST(CpuAttention, DenseMatchesReferenceEveryDtypeWithGqaAndTails) {
  for (DType dtype : testing::kFloatDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    Problem p(uniform(dtype, 2, 200, 190, 4, 2, 64), 1);
    EXPECT_EQ(p.run_and_check(nullptr), 2 * 200 * 4);
  }
}

TEST(CpuAttention, RandomSymbolsOddBlocksUniformBatch) {
  struct Blocks {
    int32_t q, kv;
  };
  uint32_t seed = 10;
  for (Blocks bl : {Blocks{64, 128}, Blocks{128, 64}, Blocks{48, 80}, Blocks{16, 32}}) {
    for (DType dtype : {DType::kFloat64, DType::kBFloat16}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << " bq=" << bl.q << " bkv=" << bl.kv);
      Problem p(uniform(dtype, 2, 173, 301, 4, 1, 40), ++seed);
      const Symbols s = testing::random_symbols(p.seqlens, 4, bl.q, bl.kv, seed, 0.6);
      const int64_t written = p.run_and_check(&s);
      EXPECT_GT(written, 0);
      EXPECT_LT(written, 2 * 173 * 4);
    }
  }
}

TEST(CpuAttention, RandomSymbolsVarlenEveryDtype) {
  // Lengths off the block grid, a request with no keys and one with no queries.
  uint32_t seed = 100;
  for (DType dtype : testing::kFloatDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    Problem p(varlen(dtype, {130, 1, 77, 0, 257}, {100, 50, 0, 64, 300}, 6, 3, 64), ++seed);
    const Symbols s = testing::random_symbols(p.seqlens, 6, 64, 48, seed, 0.7);
    EXPECT_GT(p.run_and_check(&s), 0);
  }
}

TEST(CpuAttention, VarlenRequestWithoutKeysGivesZeroAndMinusInf) {
  Problem p(varlen(DType::kFloat32, {20, 33}, {0, 40}, 2, 2, 16), 7);
  const Symbols s = dense_symbols(p.seqlens, 2, 16, 16);
  EXPECT_EQ(p.run_and_check(&s), (20 + 33) * 2);
  for (int t = 0; t < 20; ++t) {
    EXPECT_EQ(p.lse[p.lse_index(0, t, 1)], -std::numeric_limits<float>::infinity());
    EXPECT_EQ(p.out->get((int64_t{t} * 2 + 1) * 16 + 5), 0.0);
  }
}

TEST(CpuAttention, AllSymbolsActiveEqualsDense) {
  Problem p(uniform(DType::kFloat32, 1, 300, 260, 2, 2, 64), 3);
  p.run_and_check(nullptr);
  const std::vector<float> dense_lse = p.lse;
  std::vector<double> dense_out(p.out->count());
  for (int64_t i = 0; i < p.out->count(); ++i) dense_out[i] = p.out->get(i);
  // Same 128 x 128 tiling as the dense path: bit-identical; other tilings only reorder sums.
  for (int32_t block : {128, 48}) {
    SCOPED_TRACE(block);
    const Symbols s = dense_symbols(p.seqlens, 2, block, block);
    p.run_and_check(&s);
    for (int64_t i = 0; i < p.out->count(); ++i) {
      if (block == 128) {
        ASSERT_EQ(p.out->get(i), dense_out[i]) << i;
      } else {
        ASSERT_NEAR(p.out->get(i), dense_out[i], 2 * testing::ulp(DType::kFloat32, dense_out[i]));
      }
    }
    for (size_t i = 0; i < dense_lse.size(); ++i) {
      ASSERT_NEAR(p.lse[i], dense_lse[i], 2 * testing::ulp(DType::kFloat32, dense_lse[i])) << i;
    }
  }
}

TEST(CpuAttention, CachedRowsAreNotWritten) {
  // Half the query blocks cached: run_and_check verifies the sentinels survive in out and lse.
  Problem p(uniform(DType::kFloat16, 1, 256, 256, 4, 4, 32), 5);
  Symbols s = dense_symbols(p.seqlens, 4, 64, 64);
  for (int h = 0; h < 4; ++h) {
    for (int i = 0; i < 4; ++i) s.set_query(0, h, i, (h + i) % 2 == 0);
  }
  EXPECT_EQ(p.run_and_check(&s), 256 * 4 / 2);
}

TEST(CpuAttention, ActiveBlockWithoutKeptKeysGivesZeroAndMinusInf) {
  Problem p(uniform(DType::kBFloat16, 2, 100, 90, 2, 1, 64), 9);
  Symbols s = dense_symbols(p.seqlens, 2, 32, 32);
  for (int j = 0; j < 3; ++j) s.set_kv(1, 0, 2, j, false);  // (b=1, h=0, i=2) keeps nothing
  p.run_and_check(&s);
  for (int t = 64; t < 96; ++t) {
    EXPECT_EQ(p.lse[p.lse_index(1, t, 0)], -std::numeric_limits<float>::infinity());
    for (int x = 0; x < 64; ++x) EXPECT_EQ(p.out->get(((100 + t) * 2) * 64 + x), 0.0);
  }
}

TEST(CpuAttention, StridedPackedQkvScaleAndNoLse) {
  for (bool is_varlen : {false, true}) {
    SCOPED_TRACE(is_varlen);
    Case c = is_varlen ? varlen(DType::kFloat64, {90, 150}, {90, 150}, 3, 3, 24)
                       : uniform(DType::kFloat64, 2, 150, 150, 3, 3, 24);
    c.packed_qkv = true;
    c.softmax_scale = 0.37f;
    c.with_lse = is_varlen;
    Problem p(c, 21);
    const Symbols s = testing::random_symbols(p.seqlens, 3, 32, 16, 22, 0.5);
    EXPECT_GT(p.run_and_check(&s), 0);
  }
}

TEST(CpuAttention, AnyHeadDimAndGroupSize) {
  for (int d : {1, 8, 100, 256}) {
    SCOPED_TRACE(d);
    Problem p(uniform(DType::kFloat64, 1, 70, 33, 6, 2, d), 30 + d);
    const Symbols s = testing::random_symbols(p.seqlens, 6, 16, 16, 31, 0.5);
    p.run_and_check(&s);
  }
}

}  // namespace
}  // namespace flashomni
