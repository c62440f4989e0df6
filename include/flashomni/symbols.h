// FlashOmni core: the sparse symbols (the contract every kernel obeys) — layout, decoder, owner.
// Physical layout (docs/symbols.md is the reference text):
//   Sq  : uint32 words [batch, heads, q_words],            q_words  = ceil(q_blocks / 32)
//         query block i of (b, h) is bit (i % 32) of word ((b * heads + h) * q_words + i / 32)
//   Skv : uint32 words [batch, heads, q_blocks, kv_words], kv_words = ceil(kv_blocks / 32)
//         key block j of (b, h, i) is bit (j % 32) of word
//         ((b * heads + h) * q_blocks + i) * kv_words + j / 32
// q_blocks = ceil(max_seqlen_q / block_q), kv_blocks = ceil(max_seqlen_kv / block_kv); in a varlen
// batch a request shorter than the longest keeps the padded rows, and every bit past its own block
// count must be 0 (the validator checks). Bit 1 = active/kept, 0 = cached (Sq) / skipped (Skv).
// Symbols are per query head; with GQA the kv head of query head h is h / (heads / kv_heads).
#pragma once

#include <cstdint>
#include <vector>

#include "flashomni/common.h"

namespace flashomni {

inline constexpr int32_t kDefaultBlockQ = 128;
inline constexpr int32_t kDefaultBlockKV = 128;

struct SymbolShape {
  int32_t batch = 0;
  int32_t heads = 0;  // query heads
  int32_t q_blocks = 0;
  int32_t kv_blocks = 0;
  int32_t block_q = kDefaultBlockQ;
  int32_t block_kv = kDefaultBlockKV;

  FLASHOMNI_HOST_DEVICE int32_t q_words() const { return (q_blocks + 31) / 32; }
  FLASHOMNI_HOST_DEVICE int32_t kv_words() const { return (kv_blocks + 31) / 32; }
  FLASHOMNI_HOST_DEVICE int64_t q_size() const {
    return static_cast<int64_t>(batch) * heads * q_words();
  }
  FLASHOMNI_HOST_DEVICE int64_t kv_size() const {
    return static_cast<int64_t>(batch) * heads * q_blocks * kv_words();
  }
  FLASHOMNI_HOST_DEVICE int64_t q_word_index(int32_t b, int32_t h, int32_t i) const {
    return (static_cast<int64_t>(b) * heads + h) * q_words() + i / 32;
  }
  // First word of the Skv row of (b, h, i).
  FLASHOMNI_HOST_DEVICE int64_t kv_row_index(int32_t b, int32_t h, int32_t i) const {
    return ((static_cast<int64_t>(b) * heads + h) * q_blocks + i) * kv_words();
  }
};

// Non-owning view; `device` tells where the words live.
struct SymbolsRef {
  const uint32_t* q_bits = nullptr;
  const uint32_t* kv_bits = nullptr;
  SymbolShape shape;
  Device device = Device::kCPU;
};

// Bits of word `word` (of a row of `count` flags) that hold a flag, i.e. flags [32*word, count).
// Used to clear or check the padding bits of the last word of a row.
FLASHOMNI_HOST_DEVICE uint32_t symbol_word_mask(int32_t word, int32_t count) {
  const int32_t valid = count - 32 * word;
  return valid >= 32 ? 0xffffffffu : (valid <= 0 ? 0u : ((1u << valid) - 1u));
}

// The one decoder: the CPU backend, the planners and the kernels all read symbols through these.
FLASHOMNI_HOST_DEVICE bool query_active(const SymbolsRef& s, int32_t b, int32_t h, int32_t i) {
  return (s.q_bits[s.shape.q_word_index(b, h, i)] >> (i % 32)) & 1u;
}
FLASHOMNI_HOST_DEVICE bool kv_active(const SymbolsRef& s, int32_t b, int32_t h, int32_t i,
                                     int32_t j) {
  return (s.kv_bits[s.shape.kv_row_index(b, h, i) + j / 32] >> (j % 32)) & 1u;
}

// Owning host container, all bits 0 (everything cached) on construction.
class Symbols {
 public:
  Symbols() = default;
  explicit Symbols(const SymbolShape& shape);
  // Every bit of the padded shape set: all query blocks active, all key blocks kept. Valid for a
  // uniform batch; for varlen use dense_symbols(seqlens, ...), which keeps out-of-range bits 0.
  static Symbols dense(const SymbolShape& shape);

  const SymbolShape& shape() const { return shape_; }
  SymbolsRef ref() const {
    return SymbolsRef{q_bits_.data(), kv_bits_.data(), shape_, Device::kCPU};
  }
  std::vector<uint32_t>& q_bits() { return q_bits_; }
  std::vector<uint32_t>& kv_bits() { return kv_bits_; }
  const std::vector<uint32_t>& q_bits() const { return q_bits_; }
  const std::vector<uint32_t>& kv_bits() const { return kv_bits_; }

  // Bounds-checked (throws fail_argument naming "b", "h", "i" or "j").
  void set_query(int32_t b, int32_t h, int32_t i, bool active);
  void set_kv(int32_t b, int32_t h, int32_t i, int32_t j, bool active);
  bool query(int32_t b, int32_t h, int32_t i) const { return query_active(ref(), b, h, i); }
  bool kv(int32_t b, int32_t h, int32_t i, int32_t j) const { return kv_active(ref(), b, h, i, j); }

 private:
  SymbolShape shape_;
  std::vector<uint32_t> q_bits_;
  std::vector<uint32_t> kv_bits_;
};

// Per-request sequence lengths. Uniform batch: cu_seqlens_* == nullptr and seqlen_* hold the
// length. Varlen: cu_seqlens_* are host int32 arrays of batch + 1 offsets.
struct SeqLens {
  int32_t batch = 0;
  int32_t seqlen_q = 0;
  int32_t seqlen_kv = 0;
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_kv = nullptr;

  int32_t q_len(int32_t b) const {
    return cu_seqlens_q ? cu_seqlens_q[b + 1] - cu_seqlens_q[b] : seqlen_q;
  }
  int32_t kv_len(int32_t b) const {
    return cu_seqlens_kv ? cu_seqlens_kv[b + 1] - cu_seqlens_kv[b] : seqlen_kv;
  }
};

// Checks batch > 0 ("seqlens.batch"), lengths >= 0 ("seqlen_q", "seqlen_kv") or, for varlen,
// cu_seqlens starting at 0 and non-decreasing ("cu_seqlens_q", "cu_seqlens_kv").
void validate_seqlens(const SeqLens& seqlens);

// Per-request block counts: ceil(len / block), 0 for an empty request.
int32_t request_q_blocks(const SeqLens& seqlens, int32_t b, int32_t block_q);
int32_t request_kv_blocks(const SeqLens& seqlens, int32_t b, int32_t block_kv);

// The shape symbols must have for these sequences (q_blocks/kv_blocks from the longest request).
// Validates its inputs: heads > 0 ("heads"), block sizes ("block_q", "block_kv") and seqlens.
SymbolShape symbol_shape_for(const SeqLens& seqlens, int32_t heads,
                             int32_t block_q = kDefaultBlockQ, int32_t block_kv = kDefaultBlockKV);

// All in-range bits set: for each request b, query blocks i < request_q_blocks(b) active and, in
// those rows, key blocks j < request_kv_blocks(b) kept; every other bit 0 (passes
// validate_symbols).
Symbols dense_symbols(const SeqLens& seqlens, int32_t heads, int32_t block_q = kDefaultBlockQ,
                      int32_t block_kv = kDefaultBlockKV);

// Validates a host-resident SymbolsRef against the sequences it will be used with: block sizes
// (positive, multiples of 16, at most 1024), shape equal to symbol_shape_for(...), non-null words,
// and every bit beyond a request's own q/kv block count equal to 0. Throws fail_argument naming
// "symbols.q_bits", "symbols.kv_bits", "symbols.block_q", ... with the expected value; the first
// nonzero out-of-range bit is reported with its (b, h, i[, j]). Host words only ("symbols.device").
void validate_symbols(const SymbolsRef& symbols, const SeqLens& seqlens, int32_t heads);

// Validates only what can be checked without reading device memory (shape vs sequences, block
// sizes, pointers); used for CUDA-resident symbols so that no host synchronisation is needed.
// Pass a SeqLens without cu_seqlens whose seqlen_q/seqlen_kv are the maximum lengths.
void validate_symbol_shape(const SymbolsRef& symbols, const SeqLens& seqlens, int32_t heads);

}  // namespace flashomni
