// Host tests of the symbols converters: dense masks, Flex block lists, the reference packed bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "flashomni/symbols_convert.h"
#include "flashomni/tensor.h"
#include "test_symbols_util.h"

namespace flashomni {
namespace {

using testing::random_symbols;
using testing::SeqCase;

void expect_same(const Symbols& a, const Symbols& b) {
  EXPECT_EQ(a.shape().q_blocks, b.shape().q_blocks);
  EXPECT_EQ(a.shape().kv_blocks, b.shape().kv_blocks);
  EXPECT_EQ(a.q_bits(), b.q_bits());
  EXPECT_EQ(a.kv_bits(), b.kv_bits());
}

// Varlen with partial blocks and an empty request, a uniform batch (uniform_batch > 0 uses
// q_lens[0]/kv_lens[0]), several heads, unequal and extreme block sizes.
struct CaseSpec {
  std::vector<int32_t> q_lens, kv_lens;
  int32_t uniform_batch, heads, block_q, block_kv;
};
const CaseSpec kCases[] = {
    {{517, 128, 1, 0}, {333, 1024, 17, 5}, 0, 4, 128, 64},
    {{1000}, {4608}, 2, 3, 128, 128},
    {{64, 700}, {2000, 100}, 0, 5, 64, 256},
    {{1}, {1}, 0, 1, 16, 1024},
};

// Runs `body(seqlens, heads, block_q, block_kv, seed)` on every case with its own seed.
template <typename Body>
void for_each_case(Body body) {
  uint32_t seed = 100;
  for (const CaseSpec& c : kCases) {
    const SeqCase seq = c.uniform_batch > 0 ? SeqCase(c.uniform_batch, c.q_lens[0], c.kv_lens[0])
                                            : SeqCase(c.q_lens, c.kv_lens);
    SCOPED_TRACE(seed);
    body(seq.seqlens, c.heads, c.block_q, c.block_kv, seed++);
  }
}

TEST(SymbolsConvert, MasksRoundTrip) {
  for_each_case([](const SeqLens& sl, int32_t heads, int32_t bq, int32_t bkv, uint32_t seed) {
    const Symbols s = random_symbols(sl, heads, bq, bkv, seed);
    const SymbolShape& sh = s.shape();
    std::vector<uint8_t> qm(sh.batch * heads * sh.q_blocks, 7);
    std::vector<uint8_t> km(qm.size() * sh.kv_blocks, 7);
    const TensorRef qt = make_tensor(qm.data(), DType::kUInt8, {sh.batch, heads, sh.q_blocks});
    const TensorRef kt =
        make_tensor(km.data(), DType::kUInt8, {sh.batch, heads, sh.q_blocks, sh.kv_blocks});
    symbols_to_masks(s.ref(), sl, qt, kt);
    for (int32_t b = 0; b < sh.batch; ++b) {
      for (int32_t h = 0; h < heads; ++h) {
        for (int32_t i = 0; i < sh.q_blocks; ++i) {
          ASSERT_EQ(qm[(b * heads + h) * sh.q_blocks + i], s.query(b, h, i) ? 1 : 0);
          for (int32_t j = 0; j < sh.kv_blocks; ++j) {
            ASSERT_EQ(km[((b * heads + h) * sh.q_blocks + i) * sh.kv_blocks + j],
                      s.kv(b, h, i, j) ? 1 : 0);
          }
        }
      }
    }
    const Symbols back = symbols_from_masks(qt, kt, sl, bq, bkv);
    expect_same(s, back);
    EXPECT_NO_THROW(validate_symbols(back.ref(), sl, heads));
  });
}

TEST(SymbolsConvert, MasksAcceptStridedViews) {
  // q_mask [1, 2, 3] viewed head-minor from a [1, 3, 2] buffer: element (0, h, i) at i * 2 + h.
  const SeqCase c(1, 300, 128);
  std::vector<uint8_t> q = {1, 0, 0, 0, 1, 1};
  TensorRef qt = make_tensor(q.data(), DType::kUInt8, {1, 2, 3});
  qt.stride[1] = 1;
  qt.stride[2] = 2;
  std::vector<uint8_t> kv = {1, 1, 0, 1, 0, 1};
  const TensorRef kt = make_tensor(kv.data(), DType::kUInt8, {1, 2, 3, 1});
  const Symbols s = symbols_from_masks(qt, kt, c.seqlens);
  EXPECT_TRUE(s.query(0, 0, 0));
  EXPECT_FALSE(s.query(0, 0, 1));
  EXPECT_TRUE(s.query(0, 0, 2));
  EXPECT_FALSE(s.query(0, 1, 0));
  EXPECT_FALSE(s.query(0, 1, 1));
  EXPECT_TRUE(s.query(0, 1, 2));
  EXPECT_FALSE(s.kv(0, 0, 2, 0));
  EXPECT_TRUE(s.kv(0, 1, 0, 0));
}

TEST(SymbolsConvert, MasksRejectBadInput) {
  const SeqCase c({200, 100}, {300, 50});  // q blocks {2, 1}, kv blocks {3, 1}
  std::vector<uint8_t> q(2 * 2 * 2, 0), kv(2 * 2 * 2 * 3, 0);
  auto qt = [&] { return make_tensor(q.data(), DType::kUInt8, {2, 2, 2}); };
  auto kt = [&] { return make_tensor(kv.data(), DType::kUInt8, {2, 2, 2, 3}); };
  EXPECT_NO_THROW(symbols_from_masks(qt(), kt(), c.seqlens));
  q[3] = 2;
  EXPECT_INVALID(symbols_from_masks(qt(), kt(), c.seqlens), "q_mask", "(b=0, h=1, i=1)", "is 2",
                 "0 or 1");
  q[3] = 0;
  q[(1 * 2 + 0) * 2 + 1] = 1;  // request 1 has one query block
  EXPECT_INVALID(symbols_from_masks(qt(), kt(), c.seqlens), "q_mask", "(b=1, h=0, i=1)",
                 "expected 0");
  q.assign(q.size(), 0);
  kv[((1 * 2 + 1) * 2 + 0) * 3 + 2] = 1;  // request 1 has one key block
  EXPECT_INVALID(symbols_from_masks(qt(), kt(), c.seqlens), "kv_mask", "(b=1, h=1, i=0, j=2)",
                 "1 key blocks");
  kv[((1 * 2 + 1) * 2 + 0) * 3 + 2] = 255;
  EXPECT_INVALID(symbols_from_masks(qt(), kt(), c.seqlens), "kv_mask", "is 255");
  kv.assign(kv.size(), 0);
  EXPECT_INVALID(
      symbols_from_masks(make_tensor(q.data(), DType::kUInt8, {2, 2, 3}), kt(), c.seqlens),
      "q_mask", "[B, H, q_blocks] = [2, 2, 2]", "got [2, 2, 3]");
  EXPECT_INVALID(
      symbols_from_masks(qt(), make_tensor(kv.data(), DType::kUInt8, {2, 2, 2, 2}), c.seqlens),
      "kv_mask", "[2, 2, 2, 3]");
  EXPECT_INVALID(
      symbols_from_masks(make_tensor(q.data(), DType::kInt32, {2, 2, 2}), kt(), c.seqlens),
      "q_mask", "uint8");
  EXPECT_INVALID(symbols_from_masks(qt(), make_tensor(kv.data(), DType::kUInt8, {24}), c.seqlens),
                 "kv_mask", "4 dims");
  EXPECT_INVALID(symbols_from_masks(TensorRef{}, kt(), c.seqlens), "q_mask", "not given");
  EXPECT_INVALID(symbols_from_masks(make_tensor(q.data(), DType::kUInt8, {2, 2, 2}, Device::kCUDA),
                                    kt(), c.seqlens),
                 "q_mask", "CPU");
  EXPECT_INVALID(symbols_from_masks(qt(), kt(), c.seqlens, 128, 72), "block_kv");
  // symbols_to_masks validates the symbols and the outputs.
  Symbols s = dense_symbols(c.seqlens, 2);
  EXPECT_INVALID(symbols_to_masks(s.ref(), c.seqlens, qt(),
                                  make_tensor(kv.data(), DType::kUInt8, {2, 2, 3, 2})),
                 "kv_mask", "[B, H, q_blocks, kv_blocks]");
  s.set_kv(1, 0, 0, 1, true);
  EXPECT_INVALID(symbols_to_masks(s.ref(), c.seqlens, qt(), kt()), "symbols.kv_bits",
                 "(b=1, h=0, i=0, j=1)");
}

TEST(SymbolsConvert, BlockListsRoundTrip) {
  for_each_case([](const SeqLens& sl, int32_t heads, int32_t bq, int32_t bkv, uint32_t seed) {
    const Symbols s = random_symbols(sl, heads, bq, bkv, seed, 0.3);
    const SymbolShape& sh = s.shape();
    const int64_t rows = int64_t{sh.batch} * heads * sh.q_blocks;
    for (const int32_t max_kv : {sh.kv_blocks, sh.kv_blocks + 3}) {
      std::vector<int32_t> num(rows, -5), idx(rows * max_kv, -5);
      std::vector<uint8_t> qm(rows, 9);
      const TensorRef nt = make_tensor(num.data(), DType::kInt32, {sh.batch, heads, sh.q_blocks});
      const TensorRef it =
          make_tensor(idx.data(), DType::kInt32, {sh.batch, heads, sh.q_blocks, max_kv});
      const TensorRef qt = make_tensor(qm.data(), DType::kUInt8, {sh.batch, heads, sh.q_blocks});
      symbols_to_block_lists(s.ref(), sl, nt, it, qt);
      for (int64_t r = 0; r < rows; ++r) {
        const int32_t* list = idx.data() + r * max_kv;
        for (int32_t t = 0; t < max_kv; ++t) {
          if (t >= num[r]) {
            ASSERT_EQ(list[t], 0) << "pad";
          } else if (t > 0) {
            ASSERT_LT(list[t - 1], list[t]) << "ascending";
          }
        }
      }
      expect_same(s, symbols_from_block_lists(nt, it, qt, sl, bq, bkv));
      // Without q_mask: every in-range query block comes back active, Skv unchanged.
      symbols_to_block_lists(s.ref(), sl, nt, it, TensorRef{});
      const Symbols all_q = symbols_from_block_lists(nt, it, TensorRef{}, sl, bq, bkv);
      EXPECT_EQ(all_q.kv_bits(), s.kv_bits());
      EXPECT_EQ(all_q.q_bits(), dense_symbols(sl, heads, bq, bkv).q_bits());
    }
  });
}

TEST(SymbolsConvert, BlockListsHandMade) {
  const SeqCase c(1, 128, 512);  // 1 query block, 4 key blocks
  std::vector<int32_t> num = {3, 0};
  std::vector<int32_t> idx = {2, 2, 0, 99, 3, 3, 3, 3};  // duplicates; entries past count ignored
  const Symbols s = symbols_from_block_lists(make_tensor(num.data(), DType::kInt32, {1, 2, 1}),
                                             make_tensor(idx.data(), DType::kInt32, {1, 2, 1, 4}),
                                             TensorRef{}, c.seqlens);
  EXPECT_EQ(s.kv_bits()[0], 0b0101u);
  EXPECT_EQ(s.kv_bits()[1], 0u);  // count 0: every key block skipped, the block still active
  EXPECT_TRUE(s.query(0, 1, 0));
  std::vector<int32_t> num_out(2), idx_out(2 * 2);
  symbols_to_block_lists(s.ref(), c.seqlens, make_tensor(num_out.data(), DType::kInt32, {1, 2, 1}),
                         make_tensor(idx_out.data(), DType::kInt32, {1, 2, 1, 2}), TensorRef{});
  EXPECT_EQ(num_out, (std::vector<int32_t>{2, 0}));
  EXPECT_EQ(idx_out, (std::vector<int32_t>{0, 2, 0, 0}));
}

TEST(SymbolsConvert, BlockListsRejectBadInput) {
  const SeqCase c({256, 100}, {512, 100});  // q blocks {2, 1}, kv blocks {4, 1}
  std::vector<int32_t> num(2 * 1 * 2, 0), idx(2 * 1 * 2 * 4, 0);
  std::vector<uint8_t> qm(4, 0);
  auto nt = [&] { return make_tensor(num.data(), DType::kInt32, {2, 1, 2}); };
  auto it = [&] { return make_tensor(idx.data(), DType::kInt32, {2, 1, 2, 4}); };
  EXPECT_NO_THROW(symbols_from_block_lists(nt(), it(), TensorRef{}, c.seqlens));
  num[1] = 5;
  EXPECT_INVALID(symbols_from_block_lists(nt(), it(), TensorRef{}, c.seqlens), "kv_num_blocks",
                 "(b=0, h=0, i=1)", "0 <= count <= 4");
  num[1] = -1;
  EXPECT_INVALID(symbols_from_block_lists(nt(), it(), TensorRef{}, c.seqlens), "kv_num_blocks",
                 "is -1");
  num[1] = 0;
  num[3] = 1;  // request 1 has one query block: row i=1 is padding
  EXPECT_INVALID(symbols_from_block_lists(nt(), it(), TensorRef{}, c.seqlens), "kv_num_blocks",
                 "(b=1, h=0, i=1)", "padded row");
  num[3] = 0;
  num[2] = 2;
  idx[(2 * 4) + 1] = 1;  // request 1 has one key block
  EXPECT_INVALID(symbols_from_block_lists(nt(), it(), TensorRef{}, c.seqlens), "kv_indices",
                 "(b=1, h=0, i=0, t=1)", "is 1", "[0, 1)");
  idx[(2 * 4) + 1] = -3;
  EXPECT_INVALID(symbols_from_block_lists(nt(), it(), TensorRef{}, c.seqlens), "kv_indices",
                 "is -3");
  idx.assign(idx.size(), 0);
  num.assign(num.size(), 0);
  EXPECT_INVALID(
      symbols_from_block_lists(nt(), make_tensor(idx.data(), DType::kInt32, {2, 1, 3, 2}),
                               TensorRef{}, c.seqlens),
      "kv_indices", "[B, H, q_blocks, max_kv]");
  EXPECT_INVALID(symbols_from_block_lists(make_tensor(num.data(), DType::kUInt32, {2, 1, 2}), it(),
                                          TensorRef{}, c.seqlens),
                 "kv_num_blocks", "int32");
  qm[3] = 1;  // q_mask padding entry
  EXPECT_INVALID(symbols_from_block_lists(
                     nt(), it(), make_tensor(qm.data(), DType::kUInt8, {2, 1, 2}), c.seqlens),
                 "q_mask", "(b=1, h=0, i=1)");
  // to_block_lists: max_kv must hold the longest row (4 kept blocks here).
  const Symbols dense = dense_symbols(c.seqlens, 1);
  std::vector<int32_t> small(2 * 1 * 2 * 3, 0);
  EXPECT_INVALID(
      symbols_to_block_lists(dense.ref(), c.seqlens, nt(),
                             make_tensor(small.data(), DType::kInt32, {2, 1, 2, 3}), TensorRef{}),
      "kv_indices", "at least 4 columns", "got 3");
  EXPECT_INVALID(symbols_to_block_lists(dense.ref(), c.seqlens, nt(), it(),
                                        make_tensor(qm.data(), DType::kUInt8, {2, 2, 1})),
                 "q_mask", "[2, 1, 2]");
}

TEST(SymbolsConvert, ReferencePackedHandMade) {
  // H = 2, 256 queries (nQ = 2), 384 keys (nK = 3): Sq flags at i * 2 + h, Skv at (i*2 + h)*3 + j.
  const SeqCase c(1, 256, 384);
  Symbols s(symbol_shape_for(c.seqlens, 2));
  s.set_query(0, 0, 0, true);  // flag 0
  s.set_query(0, 0, 1, true);  // flag 2
  s.set_query(0, 1, 1, true);  // flag 3
  s.set_kv(0, 1, 0, 1, true);  // flag (0*2 + 1)*3 + 1 = 4 -> byte 0 bit 4
  s.set_kv(0, 0, 1, 2, true);  // flag (1*2 + 0)*3 + 2 = 8 -> byte 1 bit 0
  s.set_kv(0, 1, 1, 2, true);  // flag (1*2 + 1)*3 + 2 = 11 -> byte 1 bit 3
  const ReferencePackedSymbols p = symbols_to_reference_packed(s.ref(), c.seqlens);
  EXPECT_EQ(p.q_packed, (std::vector<uint8_t>{0x0d}));
  EXPECT_EQ(p.kv_packed, (std::vector<uint8_t>{0x10, 0x09}));
  EXPECT_EQ(p.q_indptr, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(p.kv_indptr, (std::vector<int32_t>{0, 2}));
}

TEST(SymbolsConvert, ReferencePackedSegmentsStartOnByteBoundaries) {
  // q lengths {130, 64} -> nQ {2, 1}; kv {200, 500} -> nK {2, 4}; H = 3.
  // Sq flags {6, 3} -> 1 byte each; Skv flags {12, 12} -> 2 bytes each.
  const SeqCase c({130, 64}, {200, 500});
  const Symbols s = dense_symbols(c.seqlens, 3);
  const ReferencePackedSymbols p = symbols_to_reference_packed(s.ref(), c.seqlens);
  EXPECT_EQ(p.q_indptr, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(p.kv_indptr, (std::vector<int32_t>{0, 2, 4}));
  EXPECT_EQ(p.q_packed, (std::vector<uint8_t>{0x3f, 0x07}));
  EXPECT_EQ(p.kv_packed, (std::vector<uint8_t>{0xff, 0x0f, 0xff, 0x0f}));
}

Symbols from_packed(ReferencePackedSymbols& p, const SeqLens& sl, int32_t heads, int32_t bq,
                    int32_t bkv) {
  const auto n = [](const auto& v) { return static_cast<int64_t>(v.size()); };
  return symbols_from_reference_packed(
      make_tensor(p.q_packed.data(), DType::kUInt8, {n(p.q_packed)}),
      make_tensor(p.q_indptr.data(), DType::kInt32, {n(p.q_indptr)}),
      make_tensor(p.kv_packed.data(), DType::kUInt8, {n(p.kv_packed)}),
      make_tensor(p.kv_indptr.data(), DType::kInt32, {n(p.kv_indptr)}), sl, heads, bq, bkv);
}

TEST(SymbolsConvert, ReferencePackedRoundTrip) {
  for_each_case([](const SeqLens& sl, int32_t heads, int32_t bq, int32_t bkv, uint32_t seed) {
    const Symbols s = random_symbols(sl, heads, bq, bkv, seed);
    ReferencePackedSymbols p = symbols_to_reference_packed(s.ref(), sl);
    for (int32_t b = 0; b < sl.batch; ++b) {
      const int64_t nq = request_q_blocks(sl, b, bq), nk = request_kv_blocks(sl, b, bkv);
      EXPECT_EQ(p.q_indptr[b + 1] - p.q_indptr[b], (nq * heads + 7) / 8);
      EXPECT_EQ(p.kv_indptr[b + 1] - p.kv_indptr[b], (nq * heads * nk + 7) / 8);
    }
    expect_same(s, from_packed(p, sl, heads, bq, bkv));
    // Trailing bytes past indptr[B] are ignored.
    p.kv_packed.push_back(0xff);
    expect_same(s, from_packed(p, sl, heads, bq, bkv));
  });
}

TEST(SymbolsConvert, ReferencePackedRejectsBadInput) {
  const SeqCase c({130, 64}, {200, 500});  // segments: q {1, 1} bytes, kv {2, 2} bytes, H = 3
  const Symbols s = random_symbols(c.seqlens, 3, 128, 128, 5);
  const ReferencePackedSymbols good = symbols_to_reference_packed(s.ref(), c.seqlens);
  auto run = [&](auto edit) {
    ReferencePackedSymbols p = good;
    edit(p);
    from_packed(p, c.seqlens, 3, 128, 128);
  };
  EXPECT_NO_THROW(run([](ReferencePackedSymbols&) {}));
  EXPECT_INVALID(run([](ReferencePackedSymbols& p) { p.q_indptr.pop_back(); }), "q_indptr",
                 "[B + 1] = [3]");
  EXPECT_INVALID(run([](ReferencePackedSymbols& p) {
                   p.kv_indptr = {1, 3, 5};
                 }),
                 "kv_indptr", "indptr[0] = 0");
  EXPECT_INVALID(run([](ReferencePackedSymbols& p) {
                   p.kv_indptr = {0, 3, 5};
                 }),
                 "kv_indptr", "request 0 segment is 3 bytes, expected 2");
  EXPECT_INVALID(run([](ReferencePackedSymbols& p) {
                   p.q_indptr = {0, 1, 0};
                 }),
                 "q_indptr", "non-decreasing");
  EXPECT_INVALID(run([](ReferencePackedSymbols& p) { p.kv_packed.pop_back(); }), "kv_packed",
                 "at least 4 bytes");
  // Request 1's Sq segment has 3 flags: bit 3 of its byte is padding.
  EXPECT_INVALID(run([](ReferencePackedSymbols& p) { p.q_packed[1] |= 0x08; }), "q_packed",
                 "request 1", "padding bit 3");
  // Request 0's Skv segment has 12 flags: bit 7 of its second byte is padding.
  EXPECT_INVALID(run([](ReferencePackedSymbols& p) { p.kv_packed[1] |= 0x80; }), "kv_packed",
                 "request 0", "padding bit 7");
  ReferencePackedSymbols p = good;
  EXPECT_INVALID(symbols_from_reference_packed(make_tensor(p.q_packed.data(), DType::kInt32, {2}),
                                               make_tensor(p.q_indptr.data(), DType::kInt32, {3}),
                                               make_tensor(p.kv_packed.data(), DType::kUInt8, {4}),
                                               make_tensor(p.kv_indptr.data(), DType::kInt32, {3}),
                                               c.seqlens, 3),
                 "q_packed", "uint8");
  EXPECT_INVALID(from_packed(p, c.seqlens, 0, 128, 128), "argument 'heads'");
}

}  // namespace
}  // namespace flashomni
