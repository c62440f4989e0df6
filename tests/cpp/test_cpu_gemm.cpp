// Host tests of cpu::gemm_q and cpu::gemm_o_update / gemm_o_dispatch against naive float64
// references: inactive GEMM-Q tiles untouched, GEMM-O cache = bias + cached heads, update then
// dispatch equal to the dense projection, dispatch never reading cached heads' columns, the
// cache-only update (no out) storing the full update's cache bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "flashomni/gemm.h"
#include "reference.h"
#include "test_cpu_util.h"

namespace flashomni {
namespace {

using testing::Buffer;
using testing::storage_tol;

constexpr double kSentinel = -7.25;

// Symbols with only the query grid mattering: q_blocks x block_q tokens, random Sq bits.
Symbols random_query_symbols(int batch, int heads, int q_blocks, int block_q, uint32_t seed,
                             double density) {
  SymbolShape shape;
  shape.batch = batch;
  shape.heads = heads;
  shape.q_blocks = q_blocks;
  shape.kv_blocks = 1;
  shape.block_q = block_q;
  shape.block_kv = 16;
  Symbols s(shape);
  std::mt19937 rng(seed);
  std::bernoulli_distribution on(density);
  for (int b = 0; b < batch; ++b) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < q_blocks; ++i) s.set_query(b, h, i, on(rng));
    }
  }
  return s;
}

struct QCase {
  DType dtype;
  int batch, m, k, heads, head_dim, row_offset;
  bool three_d, with_bias, with_symbols;
  int block_q = 64;
};

void run_gemm_q_case(const QCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int n = c.heads * c.head_dim;
  Buffer x(c.dtype, int64_t{c.batch} * c.m * c.k), w(c.dtype, int64_t{n} * c.k), bias(c.dtype, n);
  Buffer out(c.dtype, int64_t{c.batch} * c.m * n, kSentinel);
  const std::vector<double> xs = testing::fill_random(x, rng), ws = testing::fill_random(w, rng);
  const std::vector<double> bs = testing::fill_random(bias, rng);
  GemmQParams p;
  p.x = c.three_d ? x.tensor({c.batch, c.m, c.k}) : x.tensor({c.m, c.k});
  p.out = c.three_d ? out.tensor({c.batch, c.m, n}) : out.tensor({c.m, n});
  p.weight = w.tensor({n, c.k});
  if (c.with_bias) p.bias = bias.tensor({n});
  p.heads = c.heads;
  p.head_dim = c.head_dim;
  p.row_offset = c.row_offset;
  const int q_blocks = (c.row_offset + c.m + c.block_q - 1) / c.block_q + 1;  // one spare block
  const Symbols s = random_query_symbols(c.batch, c.heads, q_blocks, c.block_q, seed, 0.5);
  const SymbolsRef sref = s.ref();
  if (c.with_symbols) p.symbols = &sref;
  cpu::gemm_q(p);

  std::vector<double> ref(int64_t{c.batch} * c.m * n, 0.0);
  reference::add_matmul(xs, ws, c.batch, c.m, c.k, n, 0, c.k, ref);
  int64_t computed = 0, errors = 0;
  for (int b = 0; b < c.batch; ++b) {
    for (int m = 0; m < c.m; ++m) {
      for (int col = 0; col < n && errors < 10; ++col) {
        const int h = col / c.head_dim;
        const bool active = !c.with_symbols || s.query(b, h, (m + c.row_offset) / c.block_q);
        const int64_t i = (int64_t{b} * c.m + m) * n + col;
        const double want = active ? ref[i] + (c.with_bias ? bs[col] : 0.0) : kSentinel;
        const double tol = active ? storage_tol(c.dtype, want) : 0.0;
        computed += active;
        if (!(std::fabs(out.get(i) - want) <= tol)) {
          ++errors;
          ADD_FAILURE() << "b=" << b << " m=" << m << " col=" << col
                        << (active ? " (active)" : " (inactive)") << ": got " << out.get(i)
                        << ", want " << want;
        }
      }
    }
  }
  if (c.with_symbols) {
    EXPECT_GT(computed, 0);
    EXPECT_LT(computed, int64_t{c.batch} * c.m * n);
  }
}

TEST(CpuGemmQ, DenseMatchesReferenceEveryDtype) {
  for (DType dtype : testing::kFloatDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    run_gemm_q_case({dtype, 1, 150, 72, 3, 32, 0, false, true, false}, 1);
    run_gemm_q_case({dtype, 2, 70, 40, 2, 24, 0, true, false, false}, 2);
  }
}

TEST(CpuGemmQ, InactiveTilesUntouchedWithRowOffset) {
  uint32_t seed = 10;
  for (DType dtype : testing::kFloatDTypes) {
    for (int row_offset : {0, 40, 512}) {
      for (int block_q : {64, 48}) {
        SCOPED_TRACE(::testing::Message()
                     << dtype_name(dtype) << " row_offset=" << row_offset << " bq=" << block_q);
        QCase c{dtype, 2, 150, 72, 3, 32, row_offset, true, true, true};
        c.block_q = block_q;
        run_gemm_q_case(c, ++seed);
      }
    }
  }
}

struct OCase {
  DType dtype, cache_dtype;
  int batch, m, heads, head_dim, extra, n, row_offset;
  bool three_d, with_bias, with_symbols;
  int block_q = 64;
};

struct OProblem {
  OCase c;
  int k;
  Buffer a, w, bias, cache, out;
  std::vector<double> as, ws, bs;
  Symbols s;
  SymbolsRef sref;
  GemmOParams p;

  OProblem(const OCase& cs, uint32_t seed)
      : c(cs),
        k(cs.heads * cs.head_dim + cs.extra),
        a(cs.dtype, int64_t{cs.batch} * cs.m * k),
        w(cs.dtype, int64_t{cs.n} * k),
        bias(cs.dtype, cs.n),
        cache(cs.cache_dtype, int64_t{cs.batch} * cs.m * cs.n, kSentinel),
        out(cs.dtype, int64_t{cs.batch} * cs.m * cs.n, kSentinel) {
    std::mt19937 rng(seed);
    as = testing::fill_random(a, rng);
    ws = testing::fill_random(w, rng);
    bs = testing::fill_random(bias, rng);
    const int q_blocks = (c.row_offset + c.m + c.block_q - 1) / c.block_q;
    s = random_query_symbols(c.batch, c.heads, q_blocks, c.block_q, seed + 1, 0.5);
    sref = s.ref();
    p.a = c.three_d ? a.tensor({c.batch, c.m, k}) : a.tensor({c.m, k});
    p.weight = w.tensor({c.n, k});
    if (c.with_bias) p.bias = bias.tensor({c.n});
    p.cache = c.three_d ? cache.tensor({c.batch, c.m, c.n}) : cache.tensor({c.m, c.n});
    p.out = c.three_d ? out.tensor({c.batch, c.m, c.n}) : out.tensor({c.m, c.n});
    p.heads = c.heads;
    p.head_dim = c.head_dim;
    p.row_offset = c.row_offset;
    if (c.with_symbols) p.symbols = &sref;
  }

  bool active(int b, int m, int h) const {
    return !c.with_symbols || s.query(b, h, (m + c.row_offset) / c.block_q);
  }

  // Reference cache C (bias + cached heads) and the dense projection Y, both [B, M, N].
  void reference(std::vector<double>& cref, std::vector<double>& yref) const {
    const int64_t size = int64_t{c.batch} * c.m * c.n;
    cref.assign(size, 0.0);
    yref.assign(size, 0.0);
    reference::add_matmul(as, ws, c.batch, c.m, k, c.n, 0, k, yref);
    for (int h = 0; h < c.heads; ++h) {
      std::vector<double> part(size, 0.0);
      reference::add_matmul(as, ws, c.batch, c.m, k, c.n, h * c.head_dim, (h + 1) * c.head_dim,
                            part);
      for (int b = 0; b < c.batch; ++b) {
        for (int m = 0; m < c.m; ++m) {
          if (active(b, m, h)) continue;
          for (int col = 0; col < c.n; ++col) {
            const int64_t i = (int64_t{b} * c.m + m) * c.n + col;
            cref[i] += part[i];
          }
        }
      }
    }
    for (int64_t i = 0; i < size; ++i) {
      const double b = c.with_bias ? bs[i % c.n] : 0.0;
      cref[i] += b;
      yref[i] += b;
    }
  }
};

void expect_update_matches_reference(OProblem& p) {
  cpu::gemm_o_update(p.p);
  std::vector<double> cref, yref;
  p.reference(cref, yref);
  int errors = 0;
  for (int64_t i = 0; i < static_cast<int64_t>(cref.size()) && errors < 10; ++i) {
    const double c_tol = storage_tol(p.c.cache_dtype, cref[i]);
    if (!(std::fabs(p.cache.get(i) - cref[i]) <= c_tol)) {
      ++errors;
      ADD_FAILURE() << "cache[" << i << "]: got " << p.cache.get(i) << ", want " << cref[i];
    }
    // Y = round(C) + rest: off the exact projection by C's rounding plus Y's own.
    const double y_tol = c_tol + storage_tol(p.c.dtype, yref[i]);
    if (!(std::fabs(p.out.get(i) - yref[i]) <= y_tol)) {
      ++errors;
      ADD_FAILURE() << "out[" << i << "]: got " << p.out.get(i) << ", want " << yref[i];
    }
  }
}

TEST(CpuGemmO, UpdateWritesCacheAndDenseProjection) {
  uint32_t seed = 100;
  for (DType dtype : testing::kFloatDTypes) {
    for (DType cache_dtype : {DType::kFloat32, dtype}) {
      for (bool with_symbols : {false, true}) {
        SCOPED_TRACE(::testing::Message()
                     << dtype_name(dtype) << " cache " << dtype_name(cache_dtype) << " symbols "
                     << with_symbols);
        OProblem p({dtype, cache_dtype, 2, 130, 4, 16, 24, 150, 30, true, true, with_symbols},
                   ++seed);
        expect_update_matches_reference(p);
      }
    }
  }
}

TEST(CpuGemmO, DispatchAfterUpdateIsBitIdenticalAndSkipsCachedHeads) {
  uint32_t seed = 200;
  for (DType dtype : testing::kFloatDTypes) {
    for (DType cache_dtype : {DType::kFloat32, dtype}) {
      SCOPED_TRACE(::testing::Message()
                   << dtype_name(dtype) << " cache " << dtype_name(cache_dtype));
      OCase c{dtype, cache_dtype, 1, 200, 3, 32, 0, 70, 512, false, true, true};
      c.block_q = 48;
      OProblem p(c, ++seed);
      expect_update_matches_reference(p);
      std::vector<double> y(p.out.count());
      for (int64_t i = 0; i < p.out.count(); ++i) y[i] = p.out.get(i);
      // Dispatch must never read the cached heads' attention rows: overwrite them with garbage.
      for (int m = 0; m < c.m; ++m) {
        for (int h = 0; h < c.heads; ++h) {
          if (p.active(0, m, h)) continue;
          for (int x = 0; x < c.head_dim; ++x) p.a.set(int64_t{m} * p.k + h * c.head_dim + x, 1e4);
        }
      }
      for (int64_t i = 0; i < p.out.count(); ++i) p.out.set(i, kSentinel);
      cpu::gemm_o_dispatch(p.p);
      for (int64_t i = 0; i < p.out.count(); ++i) ASSERT_EQ(p.out.get(i), y[i]) << i;
    }
  }
}

TEST(CpuGemmO, DispatchAddsActiveHeadsAndExtraToTheGivenCache) {
  // A forecast written straight into the cache is what dispatch builds on (spec §4).
  OProblem p({DType::kFloat64, DType::kFloat64, 2, 90, 2, 16, 8, 40, 0, true, true, true}, 300);
  std::mt19937 rng(301);
  const std::vector<double> forecast = testing::fill_random(p.cache, rng, 5.0);
  cpu::gemm_o_dispatch(p.p);
  const int64_t size = p.out.count();
  std::vector<double> want(forecast);
  for (int h = 0; h <= p.c.heads; ++h) {  // h == heads: the extra columns
    const int k0 = h * p.c.head_dim, k1 = h < p.c.heads ? k0 + p.c.head_dim : p.k;
    std::vector<double> part(size, 0.0);
    reference::add_matmul(p.as, p.ws, p.c.batch, p.c.m, p.k, p.c.n, k0, k1, part);
    for (int64_t i = 0; i < size; ++i) {
      const int64_t row = i / p.c.n;
      const int b = static_cast<int>(row / p.c.m), m = static_cast<int>(row % p.c.m);
      if (h == p.c.heads || p.active(b, m, h)) want[i] += part[i];
    }
  }
  for (int64_t i = 0; i < size; ++i) {
    ASSERT_NEAR(p.out.get(i), want[i], storage_tol(DType::kFloat64, want[i])) << i;
    ASSERT_EQ(p.cache.get(i), forecast[i]) << "dispatch wrote the cache at " << i;
  }
}

TEST(CpuGemmO, CacheOnlyUpdateWritesTheFullUpdatesCacheAlone) {
  // gemm.h: out == nullptr in gemm_o_update stores C only, bit for bit the full update's C, and
  // reads neither the active heads' nor the extra columns of a (they are NaN below).
  uint32_t seed = 400;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (DType cache_dtype : {DType::kFloat32, dtype}) {
      for (bool with_symbols : {true, false}) {
        SCOPED_TRACE(::testing::Message()
                     << dtype_name(dtype) << " cache " << dtype_name(cache_dtype) << " symbols "
                     << with_symbols);
        OProblem p({dtype, cache_dtype, 2, 130, 4, 16, 24, 150, 30, true, true, with_symbols},
                   ++seed);
        cpu::gemm_o_update(p.p);
        std::vector<double> full(p.cache.count());
        for (int64_t i = 0; i < p.cache.count(); ++i) full[i] = p.cache.get(i);
        for (int b = 0; b < p.c.batch; ++b) {
          for (int m = 0; m < p.c.m; ++m) {
            const int64_t row = (int64_t{b} * p.c.m + m) * p.k;
            for (int x = 0; x < p.k; ++x) {
              const int h = x / p.c.head_dim;
              if (h >= p.c.heads || p.active(b, m, h)) p.a.set(row + x, std::nan(""));
            }
          }
        }
        for (int64_t i = 0; i < p.cache.count(); ++i) p.cache.set(i, kSentinel);
        for (int64_t i = 0; i < p.out.count(); ++i) p.out.set(i, kSentinel);
        p.p.out = TensorRef{};
        cpu::gemm_o_update(p.p);
        int cached = 0;
        for (int64_t i = 0; i < p.cache.count(); ++i) {
          ASSERT_EQ(p.cache.get(i), full[i]) << "cache[" << i << "]";
        }
        for (int64_t i = 0; i < p.out.count(); ++i) ASSERT_EQ(p.out.get(i), kSentinel) << i;
        for (int b = 0; b < p.c.batch; ++b) {
          for (int m = 0; m < p.c.m; ++m) {
            for (int h = 0; h < p.c.heads; ++h) cached += !p.active(b, m, h);
          }
        }
        // The symbols case has cached and active (row, head) pairs.
        EXPECT_EQ(cached > 0 && cached < p.c.batch * p.c.m * p.c.heads, with_symbols);
      }
    }
  }
}

}  // namespace
}  // namespace flashomni
