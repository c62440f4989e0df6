// FlashOmni core: the Symbols owner, shapes for sequences, and the host/shape validators (spec §1).
#include "flashomni/symbols.h"

#include <algorithm>
#include <bit>
#include <string_view>

namespace flashomni {
namespace {

// Words are allocated on the host; 2^31 words (8 GiB) is far past any real problem (a 33K-token
// video with 24 heads and 128-token blocks needs 24 * 264 * 9 = 57K Skv words), so larger shapes
// are certainly corrupt arguments rather than something to try to allocate.
constexpr int64_t kMaxSymbolWords = int64_t{1} << 31;

// Block sizes must tile the 16-row MMA fragments and fit one CTA tile (1024 tokens at most).
void check_block_size(int32_t value, std::string_view name) {
  FLASHOMNI_CHECK_ARG(value > 0 && value % 16 == 0 && value <= 1024, name,
                      "expected a positive multiple of 16 that is at most 1024, got ", value);
}

void check_shape_fields(const SymbolShape& shape) {
  FLASHOMNI_CHECK_ARG(shape.batch >= 0, "shape.batch", "expected >= 0, got ", shape.batch);
  FLASHOMNI_CHECK_ARG(shape.heads >= 0, "shape.heads", "expected >= 0, got ", shape.heads);
  FLASHOMNI_CHECK_ARG(shape.q_blocks >= 0, "shape.q_blocks", "expected >= 0, got ", shape.q_blocks);
  FLASHOMNI_CHECK_ARG(shape.kv_blocks >= 0, "shape.kv_blocks", "expected >= 0, got ",
                      shape.kv_blocks);
  check_block_size(shape.block_q, "shape.block_q");
  check_block_size(shape.block_kv, "shape.block_kv");
  FLASHOMNI_CHECK_ARG(shape.q_size() <= kMaxSymbolWords && shape.kv_size() <= kMaxSymbolWords,
                      "shape", "expected at most ", kMaxSymbolWords, " words per array, got ",
                      shape.q_size(), " (q) and ", shape.kv_size(), " (kv)");
}

int32_t blocks_for(int64_t len, int32_t block) {
  return static_cast<int32_t>((len + block - 1) / block);
}

void check_cu_seqlens(const int32_t* cu, int32_t batch, std::string_view name) {
  FLASHOMNI_CHECK_ARG(cu[0] == 0, name, "expected the first offset to be 0, got ", cu[0]);
  for (int32_t b = 0; b < batch; ++b) {
    FLASHOMNI_CHECK_ARG(cu[b + 1] >= cu[b], name,
                        "expected non-decreasing offsets (lengths >= 0), got offset[", b + 1,
                        "] = ", cu[b + 1], " < offset[", b, "] = ", cu[b]);
  }
}

// Shape, block sizes and pointers: everything that does not read the words.
void check_symbol_shape(const SymbolsRef& symbols, const SeqLens& seqlens, int32_t heads) {
  const SymbolShape& got = symbols.shape;
  check_block_size(got.block_q, "symbols.block_q");
  check_block_size(got.block_kv, "symbols.block_kv");
  const SymbolShape expect = symbol_shape_for(seqlens, heads, got.block_q, got.block_kv);
  FLASHOMNI_CHECK_ARG(got.batch == expect.batch, "symbols.batch", "expected ", expect.batch,
                      " (seqlens.batch), got ", got.batch);
  FLASHOMNI_CHECK_ARG(got.heads == expect.heads, "symbols.heads", "expected ", expect.heads,
                      " query heads, got ", got.heads);
  FLASHOMNI_CHECK_ARG(got.q_blocks == expect.q_blocks, "symbols.q_blocks", "expected ",
                      expect.q_blocks, " (ceil of the longest query length / block_q ", got.block_q,
                      "), got ", got.q_blocks);
  FLASHOMNI_CHECK_ARG(got.kv_blocks == expect.kv_blocks, "symbols.kv_blocks", "expected ",
                      expect.kv_blocks, " (ceil of the longest key length / block_kv ",
                      got.block_kv, "), got ", got.kv_blocks);
  FLASHOMNI_CHECK_ARG(symbols.q_bits != nullptr || got.q_size() == 0, "symbols.q_bits", "expected ",
                      got.q_size(), " words, got a null pointer");
  FLASHOMNI_CHECK_ARG(symbols.kv_bits != nullptr || got.kv_size() == 0, "symbols.kv_bits",
                      "expected ", got.kv_size(), " words, got a null pointer");
}

}  // namespace

Symbols::Symbols(const SymbolShape& shape) : shape_(shape) {
  check_shape_fields(shape);
  q_bits_.assign(static_cast<std::size_t>(shape.q_size()), 0u);
  kv_bits_.assign(static_cast<std::size_t>(shape.kv_size()), 0u);
}

Symbols Symbols::dense(const SymbolShape& shape) {
  Symbols s(shape);
  const int64_t rows = static_cast<int64_t>(shape.batch) * shape.heads;
  for (int64_t r = 0; r < rows; ++r) {
    for (int32_t w = 0; w < shape.q_words(); ++w) {
      s.q_bits_[r * shape.q_words() + w] = symbol_word_mask(w, shape.q_blocks);
    }
  }
  for (int64_t r = 0; r < rows * shape.q_blocks; ++r) {
    for (int32_t w = 0; w < shape.kv_words(); ++w) {
      s.kv_bits_[r * shape.kv_words() + w] = symbol_word_mask(w, shape.kv_blocks);
    }
  }
  return s;
}

namespace {

// Bounds of one index argument of set_query / set_kv.
void check_index(int32_t value, int32_t size, const char* name) {
  FLASHOMNI_CHECK_ARG(value >= 0 && value < size, name, "expected 0 <= ", name, " < ", size,
                      ", got ", value);
}

}  // namespace

void Symbols::set_query(int32_t b, int32_t h, int32_t i, bool active) {
  check_index(b, shape_.batch, "b");
  check_index(h, shape_.heads, "h");
  check_index(i, shape_.q_blocks, "i");
  uint32_t& word = q_bits_[shape_.q_word_index(b, h, i)];
  const uint32_t bit = 1u << (i % 32);
  word = active ? (word | bit) : (word & ~bit);
}

void Symbols::set_kv(int32_t b, int32_t h, int32_t i, int32_t j, bool active) {
  check_index(b, shape_.batch, "b");
  check_index(h, shape_.heads, "h");
  check_index(i, shape_.q_blocks, "i");
  check_index(j, shape_.kv_blocks, "j");
  uint32_t& word = kv_bits_[shape_.kv_row_index(b, h, i) + j / 32];
  const uint32_t bit = 1u << (j % 32);
  word = active ? (word | bit) : (word & ~bit);
}

void validate_seqlens(const SeqLens& seqlens) {
  FLASHOMNI_CHECK_ARG(seqlens.batch > 0, "seqlens.batch", "expected > 0, got ", seqlens.batch);
  if (seqlens.cu_seqlens_q) {
    check_cu_seqlens(seqlens.cu_seqlens_q, seqlens.batch, "cu_seqlens_q");
  } else {
    FLASHOMNI_CHECK_ARG(seqlens.seqlen_q >= 0, "seqlen_q", "expected >= 0, got ", seqlens.seqlen_q);
  }
  if (seqlens.cu_seqlens_kv) {
    check_cu_seqlens(seqlens.cu_seqlens_kv, seqlens.batch, "cu_seqlens_kv");
  } else {
    FLASHOMNI_CHECK_ARG(seqlens.seqlen_kv >= 0, "seqlen_kv", "expected >= 0, got ",
                        seqlens.seqlen_kv);
  }
}

int32_t request_q_blocks(const SeqLens& seqlens, int32_t b, int32_t block_q) {
  return blocks_for(seqlens.q_len(b), block_q);
}

int32_t request_kv_blocks(const SeqLens& seqlens, int32_t b, int32_t block_kv) {
  return blocks_for(seqlens.kv_len(b), block_kv);
}

SymbolShape symbol_shape_for(const SeqLens& seqlens, int32_t heads, int32_t block_q,
                             int32_t block_kv) {
  FLASHOMNI_CHECK_ARG(heads > 0, "heads", "expected > 0, got ", heads);
  check_block_size(block_q, "block_q");
  check_block_size(block_kv, "block_kv");
  validate_seqlens(seqlens);
  int32_t max_q = 0;
  int32_t max_kv = 0;
  for (int32_t b = 0; b < seqlens.batch; ++b) {
    max_q = std::max(max_q, seqlens.q_len(b));
    max_kv = std::max(max_kv, seqlens.kv_len(b));
  }
  SymbolShape shape;
  shape.batch = seqlens.batch;
  shape.heads = heads;
  shape.q_blocks = blocks_for(max_q, block_q);
  shape.kv_blocks = blocks_for(max_kv, block_kv);
  shape.block_q = block_q;
  shape.block_kv = block_kv;
  return shape;
}

Symbols dense_symbols(const SeqLens& seqlens, int32_t heads, int32_t block_q, int32_t block_kv) {
  const SymbolShape shape = symbol_shape_for(seqlens, heads, block_q, block_kv);
  Symbols s(shape);
  for (int32_t b = 0; b < shape.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, block_kv);
    for (int32_t h = 0; h < shape.heads; ++h) {
      for (int32_t w = 0; w < shape.q_words(); ++w) {
        s.q_bits()[shape.q_word_index(b, h, 32 * w)] = symbol_word_mask(w, nq);
      }
      for (int32_t i = 0; i < nq; ++i) {
        for (int32_t w = 0; w < shape.kv_words(); ++w) {
          s.kv_bits()[shape.kv_row_index(b, h, i) + w] = symbol_word_mask(w, nk);
        }
      }
    }
  }
  return s;
}

void validate_symbol_shape(const SymbolsRef& symbols, const SeqLens& seqlens, int32_t heads) {
  check_symbol_shape(symbols, seqlens, heads);
}

void validate_symbols(const SymbolsRef& symbols, const SeqLens& seqlens, int32_t heads) {
  FLASHOMNI_CHECK_ARG(symbols.device == Device::kCPU, "symbols.device",
                      "validate_symbols reads the words and expects CPU symbols, got CUDA ones "
                      "(use validate_symbol_shape for device-resident symbols)");
  check_symbol_shape(symbols, seqlens, heads);
  const SymbolShape& shape = symbols.shape;
  for (int32_t b = 0; b < shape.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, shape.block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, shape.block_kv);
    for (int32_t h = 0; h < shape.heads; ++h) {
      for (int32_t w = 0; w < shape.q_words(); ++w) {
        const uint32_t bad =
            symbols.q_bits[shape.q_word_index(b, h, 32 * w)] & ~symbol_word_mask(w, nq);
        if (bad != 0) {
          const int32_t i = 32 * w + std::countr_zero(bad);
          fail_argument("symbols.q_bits", "bit (b=", b, ", h=", h, ", i=", i,
                        ") is 1, expected 0: request ", b, " has ", nq,
                        " query blocks (query length ", seqlens.q_len(b), ", block_q ",
                        shape.block_q, ")");
        }
      }
      for (int32_t i = 0; i < shape.q_blocks; ++i) {
        // Padded rows (i >= nq) must be all 0; real rows only past the request's nk key blocks.
        const int32_t valid = i < nq ? nk : 0;
        const uint32_t* row = symbols.kv_bits + shape.kv_row_index(b, h, i);
        for (int32_t w = 0; w < shape.kv_words(); ++w) {
          const uint32_t bad = row[w] & ~symbol_word_mask(w, valid);
          if (bad != 0) {
            const int32_t j = 32 * w + std::countr_zero(bad);
            fail_argument("symbols.kv_bits", "bit (b=", b, ", h=", h, ", i=", i, ", j=", j,
                          ") is 1, expected 0: request ", b, " has ", nq, " query blocks and ", nk,
                          " key blocks (lengths ", seqlens.q_len(b), " and ", seqlens.kv_len(b),
                          ", block_q ", shape.block_q, ", block_kv ", shape.block_kv, ")");
          }
        }
      }
    }
  }
}

}  // namespace flashomni
