// Host tests of the symbols contract: physical layout, decoder vs setters, shapes, validators.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "flashomni/symbols.h"
#include "test_symbols_util.h"

namespace flashomni {
namespace {

using testing::random_symbols;
using testing::SeqCase;

SymbolShape make_shape(int32_t batch, int32_t heads, int32_t q_blocks, int32_t kv_blocks,
                       int32_t block_q = 128, int32_t block_kv = 128) {
  SymbolShape s;
  s.batch = batch;
  s.heads = heads;
  s.q_blocks = q_blocks;
  s.kv_blocks = kv_blocks;
  s.block_q = block_q;
  s.block_kv = block_kv;
  return s;
}

TEST(Symbols, WordsFollowTheDocumentedLayout) {
  // 40 query blocks -> 2 words per (b, h); 70 key blocks -> 3 words per row.
  Symbols s(make_shape(2, 3, 40, 70));
  EXPECT_EQ(s.shape().q_words(), 2);
  EXPECT_EQ(s.shape().kv_words(), 3);
  ASSERT_EQ(s.q_bits().size(), 2u * 3 * 2);
  ASSERT_EQ(s.kv_bits().size(), 2u * 3 * 40 * 3);
  s.set_query(1, 2, 33, true);  // word (1*3 + 2)*2 + 1 = 11, bit 1
  s.set_kv(1, 0, 5, 65, true);  // word ((1*3 + 0)*40 + 5)*3 + 2 = 377, bit 1
  for (std::size_t w = 0; w < s.q_bits().size(); ++w) EXPECT_EQ(s.q_bits()[w], w == 11 ? 2u : 0u);
  for (std::size_t w = 0; w < s.kv_bits().size(); ++w) {
    EXPECT_EQ(s.kv_bits()[w], w == 377 ? 2u : 0u) << w;
  }
}

TEST(Symbols, DecoderMatchesSetters) {
  const SymbolShape shape = make_shape(2, 3, 37, 45);
  Symbols s(shape);
  std::vector<char> q(2 * 3 * 37, 0), kv(2 * 3 * 37 * 45, 0);
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; ++step) {
    const int32_t b = rng() % 2, h = rng() % 3, i = rng() % 37, j = rng() % 45;
    const bool on = rng() & 1;
    if (rng() & 1) {
      s.set_query(b, h, i, on);
      q[(b * 3 + h) * 37 + i] = on;
    } else {
      s.set_kv(b, h, i, j, on);
      kv[((b * 3 + h) * 37 + i) * 45 + j] = on;
    }
  }
  const SymbolsRef ref = s.ref();
  for (int32_t b = 0; b < 2; ++b) {
    for (int32_t h = 0; h < 3; ++h) {
      for (int32_t i = 0; i < 37; ++i) {
        ASSERT_EQ(query_active(ref, b, h, i), q[(b * 3 + h) * 37 + i] != 0);
        ASSERT_EQ(s.query(b, h, i), q[(b * 3 + h) * 37 + i] != 0);
        for (int32_t j = 0; j < 45; ++j) {
          ASSERT_EQ(kv_active(ref, b, h, i, j), kv[((b * 3 + h) * 37 + i) * 45 + j] != 0);
        }
      }
    }
  }
}

TEST(Symbols, SettersAreBoundsChecked) {
  Symbols s(make_shape(2, 3, 4, 5));
  EXPECT_INVALID(s.set_query(2, 0, 0, true), "argument 'b'", "0 <= b < 2");
  EXPECT_INVALID(s.set_query(0, -1, 0, true), "argument 'h'");
  EXPECT_INVALID(s.set_query(0, 0, 4, true), "argument 'i'", "< 4");
  EXPECT_INVALID(s.set_kv(0, 0, 0, 5, true), "argument 'j'", "< 5");
  EXPECT_INVALID(s.set_kv(0, 3, 0, 0, true), "argument 'h'");
}

TEST(Symbols, ConstructorRejectsBadShapes) {
  EXPECT_INVALID(Symbols(make_shape(-1, 1, 1, 1)), "shape.batch");
  EXPECT_INVALID(Symbols(make_shape(1, 1, -3, 1)), "shape.q_blocks");
  EXPECT_INVALID(Symbols(make_shape(1, 1, 1, 1, 8)), "shape.block_q", "multiple of 16");
  EXPECT_INVALID(Symbols(make_shape(1, 1, 1, 1, 128, 2048)), "shape.block_kv", "2048");
}

TEST(Symbols, DenseSetsThePaddedShapeButNotWordPadding) {
  const Symbols s = Symbols::dense(make_shape(1, 2, 40, 33));
  EXPECT_EQ(s.q_bits()[0], 0xffffffffu);
  EXPECT_EQ(s.q_bits()[1], 0xffu);  // blocks 32..39
  EXPECT_EQ(s.kv_bits()[0], 0xffffffffu);
  EXPECT_EQ(s.kv_bits()[1], 0x1u);  // block 32
  const SeqCase c(1, 40 * 128, 33 * 128 - 5);
  EXPECT_NO_THROW(validate_symbols(s.ref(), c.seqlens, 2));
}

TEST(Symbols, DenseSymbolsKeepsOutOfRangeBitsZero) {
  // Block counts: q {3, 0, 2}, kv {5, 1, 3} with block_q 128, block_kv 64.
  const SeqCase c({300, 0, 129}, {300, 10, 129});
  const Symbols s = dense_symbols(c.seqlens, 2, 128, 64);
  EXPECT_EQ(s.shape().q_blocks, 3);
  EXPECT_EQ(s.shape().kv_blocks, 5);
  EXPECT_NO_THROW(validate_symbols(s.ref(), c.seqlens, 2));
  const int nq[] = {3, 0, 2}, nk[] = {5, 1, 3};
  for (int32_t b = 0; b < 3; ++b) {
    for (int32_t h = 0; h < 2; ++h) {
      for (int32_t i = 0; i < 3; ++i) {
        EXPECT_EQ(s.query(b, h, i), i < nq[b]);
        for (int32_t j = 0; j < 5; ++j) EXPECT_EQ(s.kv(b, h, i, j), i < nq[b] && j < nk[b]);
      }
    }
  }
  // Symbols::dense fills the padding too, which the varlen contract forbids.
  const Symbols padded = Symbols::dense(s.shape());
  EXPECT_INVALID(validate_symbols(padded.ref(), c.seqlens, 2), "symbols.q_bits", "(b=1, h=0, i=0)",
                 "expected 0");
}

TEST(Symbols, ShapeForSequences) {
  const SeqCase uniform(2, 1000, 4608);
  const SymbolShape a = symbol_shape_for(uniform.seqlens, 24);
  EXPECT_EQ(a.batch, 2);
  EXPECT_EQ(a.heads, 24);
  EXPECT_EQ(a.q_blocks, 8);    // ceil(1000 / 128)
  EXPECT_EQ(a.kv_blocks, 36);  // 4608 / 128
  const SeqCase varlen({100, 700, 0}, {1024, 64, 2000});
  const SymbolShape v = symbol_shape_for(varlen.seqlens, 4, 64, 256);
  EXPECT_EQ(v.q_blocks, 11);  // ceil(700 / 64)
  EXPECT_EQ(v.kv_blocks, 8);  // ceil(2000 / 256)
  EXPECT_EQ(request_q_blocks(varlen.seqlens, 0, 64), 2);
  EXPECT_EQ(request_q_blocks(varlen.seqlens, 2, 64), 0);
  EXPECT_EQ(request_kv_blocks(varlen.seqlens, 1, 256), 1);
  EXPECT_INVALID(symbol_shape_for(uniform.seqlens, 0), "argument 'heads'");
  EXPECT_INVALID(symbol_shape_for(uniform.seqlens, 1, 100), "argument 'block_q'", "100");
  EXPECT_INVALID(symbol_shape_for(uniform.seqlens, 1, 128, 0), "argument 'block_kv'");
}

TEST(Symbols, SeqLensValidation) {
  const SeqCase empty_batch(0, 10, 10);
  EXPECT_INVALID(validate_seqlens(empty_batch.seqlens), "seqlens.batch", "> 0");
  const SeqCase neg_q(1, -1, 10);
  EXPECT_INVALID(validate_seqlens(neg_q.seqlens), "seqlen_q");
  const SeqCase neg_kv(1, 1, -10);
  EXPECT_INVALID(validate_seqlens(neg_kv.seqlens), "seqlen_kv");
  SeqCase shifted({10, 20}, {10, 20});
  shifted.cu_q = {5, 15, 35};
  shifted.seqlens.cu_seqlens_q = shifted.cu_q.data();
  EXPECT_INVALID(validate_seqlens(shifted.seqlens), "cu_seqlens_q", "first offset to be 0");
  SeqCase decreasing({10, 20}, {10, 20});
  decreasing.cu_kv = {0, 15, 12};
  decreasing.seqlens.cu_seqlens_kv = decreasing.cu_kv.data();
  EXPECT_INVALID(validate_seqlens(decreasing.seqlens), "cu_seqlens_kv", "non-decreasing");
  const SeqCase ok({0, 5}, {7, 0});
  EXPECT_NO_THROW(validate_seqlens(ok.seqlens));
}

TEST(Symbols, ValidatorRejectsWrongShapes) {
  const SeqCase c(2, 1000, 600);  // 8 query blocks, 5 key blocks
  const Symbols good = dense_symbols(c.seqlens, 3);
  EXPECT_NO_THROW(validate_symbols(good.ref(), c.seqlens, 3));
  auto with = [&](auto edit) {
    SymbolsRef r = good.ref();
    edit(r);
    return r;
  };
  EXPECT_INVALID(validate_symbols(with([](SymbolsRef& r) { r.shape.batch = 1; }), c.seqlens, 3),
                 "symbols.batch", "expected 2");
  EXPECT_INVALID(validate_symbols(good.ref(), c.seqlens, 4), "symbols.heads", "expected 4");
  EXPECT_INVALID(validate_symbols(with([](SymbolsRef& r) { r.shape.q_blocks = 7; }), c.seqlens, 3),
                 "symbols.q_blocks", "expected 8");
  EXPECT_INVALID(validate_symbols(with([](SymbolsRef& r) { r.shape.kv_blocks = 6; }), c.seqlens, 3),
                 "symbols.kv_blocks", "expected 5");
  EXPECT_INVALID(validate_symbols(with([](SymbolsRef& r) { r.shape.block_q = 120; }), c.seqlens, 3),
                 "symbols.block_q", "multiple of 16");
  EXPECT_INVALID(validate_symbols(with([](SymbolsRef& r) { r.shape.block_q = 0; }), c.seqlens, 3),
                 "symbols.block_q");
  EXPECT_INVALID(
      validate_symbols(with([](SymbolsRef& r) { r.shape.block_kv = 1040; }), c.seqlens, 3),
      "symbols.block_kv", "at most 1024");
  // A different block size is a different shape: block_q 64 needs 16 query blocks.
  EXPECT_INVALID(validate_symbols(with([](SymbolsRef& r) { r.shape.block_q = 64; }), c.seqlens, 3),
                 "symbols.q_blocks", "expected 16");
  EXPECT_INVALID(validate_symbols(with([](SymbolsRef& r) { r.q_bits = nullptr; }), c.seqlens, 3),
                 "symbols.q_bits", "null");
  EXPECT_INVALID(validate_symbols(with([](SymbolsRef& r) { r.kv_bits = nullptr; }), c.seqlens, 3),
                 "symbols.kv_bits", "null");
  EXPECT_INVALID(
      validate_symbols(with([](SymbolsRef& r) { r.device = Device::kCUDA; }), c.seqlens, 3),
      "symbols.device", "validate_symbol_shape");
  EXPECT_INVALID(validate_symbols(good.ref(), c.seqlens, 0), "argument 'heads'");
  const SeqCase bad_seq(0, 1000, 600);
  EXPECT_INVALID(validate_symbols(good.ref(), bad_seq.seqlens, 3), "seqlens.batch");
}

TEST(Symbols, ValidatorRejectsOutOfRangeBits) {
  // Request 0: 300 queries (3 blocks), 200 keys (2 blocks); request 1: 600 and 700 (5, 6).
  const SeqCase c({300, 600}, {200, 700});
  const Symbols base = random_symbols(c.seqlens, 2, 128, 128, 11);
  EXPECT_NO_THROW(validate_symbols(base.ref(), c.seqlens, 2));
  {
    Symbols s = base;
    s.set_query(0, 1, 3, true);
    EXPECT_INVALID(validate_symbols(s.ref(), c.seqlens, 2), "symbols.q_bits", "(b=0, h=1, i=3)",
                   "expected 0", "3 query blocks");
  }
  {
    Symbols s = base;
    s.set_kv(0, 1, 2, 4, true);  // real row, key block past the request's 2
    EXPECT_INVALID(validate_symbols(s.ref(), c.seqlens, 2), "symbols.kv_bits",
                   "(b=0, h=1, i=2, j=4)", "expected 0", "2 key blocks");
  }
  {
    Symbols s = base;
    s.set_kv(0, 0, 4, 0, true);  // padded row of the shorter request
    EXPECT_INVALID(validate_symbols(s.ref(), c.seqlens, 2), "symbols.kv_bits",
                   "(b=0, h=0, i=4, j=0)");
  }
  {
    // Padding bits inside the last word of a uniform batch: 5 blocks, bit 7 set directly.
    const SeqCase u(1, 600, 600);
    Symbols s = dense_symbols(u.seqlens, 1);
    s.q_bits()[0] |= 1u << 7;
    EXPECT_INVALID(validate_symbols(s.ref(), u.seqlens, 1), "symbols.q_bits", "i=7");
    s = dense_symbols(u.seqlens, 1);
    s.kv_bits()[s.shape().kv_row_index(0, 0, 4)] |= 1u << 31;
    EXPECT_INVALID(validate_symbols(s.ref(), u.seqlens, 1), "symbols.kv_bits",
                   "(b=0, h=0, i=4, j=31)");
  }
  {
    // Skv of a cached row may hold anything in range: it is never read.
    Symbols s(base.shape());
    s.set_kv(1, 0, 4, 5, true);
    EXPECT_FALSE(s.query(1, 0, 4));
    EXPECT_NO_THROW(validate_symbols(s.ref(), c.seqlens, 2));
  }
}

TEST(Symbols, ShapeValidatorReadsNoWords) {
  const SeqCase c(1, 4608, 4608);
  const SymbolShape shape = symbol_shape_for(c.seqlens, 24);
  // Words that live on a device: the pointers are never dereferenced.
  SymbolsRef device_ref;
  device_ref.q_bits = reinterpret_cast<const uint32_t*>(uintptr_t{0x1000});
  device_ref.kv_bits = reinterpret_cast<const uint32_t*>(uintptr_t{0x2000});
  device_ref.shape = shape;
  device_ref.device = Device::kCUDA;
  EXPECT_NO_THROW(validate_symbol_shape(device_ref, c.seqlens, 24));
  EXPECT_INVALID(validate_symbol_shape(device_ref, c.seqlens, 12), "symbols.heads");
  device_ref.kv_bits = nullptr;
  EXPECT_INVALID(validate_symbol_shape(device_ref, c.seqlens, 24), "symbols.kv_bits");
  device_ref.kv_bits = device_ref.q_bits;
  device_ref.shape.block_kv = 48;
  EXPECT_INVALID(validate_symbol_shape(device_ref, c.seqlens, 24), "symbols.kv_blocks",
                 "expected 96");
}

}  // namespace
}  // namespace flashomni
