// FlashOmni C API layer: the sparse symbols' shape, validator, dense constructor, converters and
// density statistics (thin wrappers over symbols.h / symbols_convert.h / symbols_stats.h).
#include <algorithm>

#include "capi/capi_common.h"
#include "flashomni/symbols.h"
#include "flashomni/symbols_convert.h"
#include "flashomni/symbols_stats.h"

namespace flashomni::capi {
namespace {

fo_symbols to_fo_symbols(const SymbolShape& s) {
  fo_symbols r{};
  r.batch = s.batch;
  r.heads = s.heads;
  r.q_blocks = s.q_blocks;
  r.kv_blocks = s.kv_blocks;
  r.block_q = s.block_q;
  r.block_kv = s.block_kv;
  r.device = FO_CPU;
  return r;
}

// Caller-allocated output of `count` words: checks the pointer and capacity, naming the argument.
void check_capacity(const void* ptr, std::size_t capacity, int64_t needed, const char* name,
                    const char* capacity_name) {
  FLASHOMNI_CHECK_ARG(ptr != nullptr || needed == 0, name, "must not be NULL");
  FLASHOMNI_CHECK_ARG(static_cast<int64_t>(capacity) >= needed, capacity_name, "expected at least ",
                      needed, ", got ", capacity);
}

// Copies a converter's result into the caller's words.
void copy_words(const Symbols& s, uint32_t* q_bits, std::size_t q_words, uint32_t* kv_bits,
                std::size_t kv_words) {
  check_capacity(q_bits, q_words, s.shape().q_size(), "q_bits", "q_words");
  check_capacity(kv_bits, kv_words, s.shape().kv_size(), "kv_bits", "kv_words");
  std::copy(s.q_bits().begin(), s.q_bits().end(), q_bits);
  std::copy(s.kv_bits().begin(), s.kv_bits().end(), kv_bits);
}

TensorRef tensor_arg(const fo_tensor* t, const char* name) {
  FLASHOMNI_CHECK_ARG(t != nullptr, name, "must not be NULL");
  return to_tensor_ref(*t, name);
}

// Optional tensor: NULL pointer or NULL data both mean "not given".
TensorRef optional_tensor_arg(const fo_tensor* t, const char* name) {
  return t == nullptr ? TensorRef{} : to_tensor_ref(*t, name);
}

SymbolsRef symbols_arg(const fo_symbols* s) {
  FLASHOMNI_CHECK_ARG(s != nullptr, "symbols", "must not be NULL");
  return to_symbols_ref(*s, "symbols");
}

fo_density_stat to_fo(const DensityStat& s) {
  return fo_density_stat{s.mean, s.min, s.max, s.overall, s.count};
}

fo_symbol_density to_fo(const SymbolDensity& d) {
  fo_symbol_density r{};
  r.b = d.b;
  r.h = d.h;
  r.valid_q_blocks = d.valid_q_blocks;
  r.valid_kv_blocks = d.valid_kv_blocks;
  r.active_q_blocks = d.active_q_blocks;
  r.kept_pairs = d.kept_pairs;
  r.active_q_tokens = d.active_q_tokens;
  r.kept_token_pairs = d.kept_token_pairs;
  r.q_tokens = d.q_tokens;
  r.kv_tokens = d.kv_tokens;
  r.query_density = d.query_density;
  r.query_token_density = d.query_token_density;
  r.kv_density = d.kv_density;
  r.pair_density = d.pair_density;
  r.token_pair_density = d.token_pair_density;
  return r;
}

}  // namespace
}  // namespace flashomni::capi

using namespace flashomni;
using namespace flashomni::capi;

extern "C" {

int flashomni_symbols_shape_for(const fo_seqlens* seqlens, int32_t heads, int32_t block_q,
                                int32_t block_kv, fo_symbols* shape) {
  return guarded([&] {
    FLASHOMNI_CHECK_ARG(shape != nullptr, "shape", "must not be NULL");
    const SeqLens s = to_seqlens(seqlens);
    *shape = to_fo_symbols(symbol_shape_for(s, heads, block_q, block_kv));
  });
}

int flashomni_symbols_validate(const fo_symbols* symbols, const fo_seqlens* seqlens,
                               int32_t heads) {
  return guarded([&] {
    FLASHOMNI_CHECK_ARG(symbols != nullptr, "symbols", "must not be NULL");
    const SymbolsRef ref = to_symbols_ref(*symbols, "symbols");
    const SeqLens s = to_seqlens(seqlens);
    if (ref.device == Device::kCPU) {
      validate_symbols(ref, s, heads);
      return;
    }
    // Device words are not read (no host sync): check the shape against the longest request.
    SeqLens longest;
    longest.batch = s.batch;
    for (int32_t b = 0; b < s.batch; ++b) {
      longest.seqlen_q = std::max(longest.seqlen_q, s.q_len(b));
      longest.seqlen_kv = std::max(longest.seqlen_kv, s.kv_len(b));
    }
    validate_symbol_shape(ref, longest, heads);
  });
}

int flashomni_symbols_dense(const fo_seqlens* seqlens, int32_t heads, int32_t block_q,
                            int32_t block_kv, uint32_t* q_bits, size_t q_words, uint32_t* kv_bits,
                            size_t kv_words) {
  return guarded([&] {
    const SeqLens s = to_seqlens(seqlens);
    const Symbols dense = dense_symbols(s, heads, block_q, block_kv);
    check_capacity(q_bits, q_words, dense.shape().q_size(), "q_bits", "q_words");
    check_capacity(kv_bits, kv_words, dense.shape().kv_size(), "kv_bits", "kv_words");
    std::copy(dense.q_bits().begin(), dense.q_bits().end(), q_bits);
    std::copy(dense.kv_bits().begin(), dense.kv_bits().end(), kv_bits);
  });
}

int flashomni_symbols_from_masks(const fo_tensor* q_mask, const fo_tensor* kv_mask,
                                 const fo_seqlens* seqlens, int32_t block_q, int32_t block_kv,
                                 uint32_t* q_bits, size_t q_words, uint32_t* kv_bits,
                                 size_t kv_words) {
  return guarded([&] {
    const Symbols s =
        symbols_from_masks(tensor_arg(q_mask, "q_mask"), tensor_arg(kv_mask, "kv_mask"),
                           to_seqlens(seqlens), block_q, block_kv);
    copy_words(s, q_bits, q_words, kv_bits, kv_words);
  });
}

int flashomni_symbols_to_masks(const fo_symbols* symbols, const fo_seqlens* seqlens,
                               const fo_tensor* q_mask, const fo_tensor* kv_mask) {
  return guarded([&] {
    symbols_to_masks(symbols_arg(symbols), to_seqlens(seqlens), tensor_arg(q_mask, "q_mask"),
                     tensor_arg(kv_mask, "kv_mask"));
  });
}

int flashomni_symbols_from_block_lists(const fo_tensor* kv_num_blocks, const fo_tensor* kv_indices,
                                       const fo_tensor* q_mask, const fo_seqlens* seqlens,
                                       int32_t block_q, int32_t block_kv, uint32_t* q_bits,
                                       size_t q_words, uint32_t* kv_bits, size_t kv_words) {
  return guarded([&] {
    const Symbols s = symbols_from_block_lists(
        tensor_arg(kv_num_blocks, "kv_num_blocks"), tensor_arg(kv_indices, "kv_indices"),
        optional_tensor_arg(q_mask, "q_mask"), to_seqlens(seqlens), block_q, block_kv);
    copy_words(s, q_bits, q_words, kv_bits, kv_words);
  });
}

int flashomni_symbols_to_block_lists(const fo_symbols* symbols, const fo_seqlens* seqlens,
                                     const fo_tensor* kv_num_blocks, const fo_tensor* kv_indices,
                                     const fo_tensor* q_mask) {
  return guarded([&] {
    symbols_to_block_lists(
        symbols_arg(symbols), to_seqlens(seqlens), tensor_arg(kv_num_blocks, "kv_num_blocks"),
        tensor_arg(kv_indices, "kv_indices"), optional_tensor_arg(q_mask, "q_mask"));
  });
}

int flashomni_symbols_reference_packed_size(const fo_seqlens* seqlens, int32_t heads,
                                            int32_t block_q, int32_t block_kv, size_t* q_bytes,
                                            size_t* kv_bytes) {
  return guarded([&] {
    FLASHOMNI_CHECK_ARG(q_bytes != nullptr, "q_bytes", "must not be NULL");
    FLASHOMNI_CHECK_ARG(kv_bytes != nullptr, "kv_bytes", "must not be NULL");
    const SeqLens s = to_seqlens(seqlens);
    symbol_shape_for(s, heads, block_q, block_kv);  // validates heads and block sizes
    std::size_t q = 0, kv = 0;
    for (int32_t b = 0; b < s.batch; ++b) {
      const int64_t nq = request_q_blocks(s, b, block_q);
      const int64_t nk = request_kv_blocks(s, b, block_kv);
      q += static_cast<std::size_t>((nq * heads + 7) / 8);
      kv += static_cast<std::size_t>((nq * heads * nk + 7) / 8);
    }
    *q_bytes = q;
    *kv_bytes = kv;
  });
}

int flashomni_symbols_to_reference_packed(const fo_symbols* symbols, const fo_seqlens* seqlens,
                                          uint8_t* q_packed, size_t q_bytes, int32_t* q_indptr,
                                          uint8_t* kv_packed, size_t kv_bytes, int32_t* kv_indptr) {
  return guarded([&] {
    const SeqLens s = to_seqlens(seqlens);
    const ReferencePackedSymbols r = symbols_to_reference_packed(symbols_arg(symbols), s);
    const auto q_size = static_cast<int64_t>(r.q_packed.size());
    const auto kv_size = static_cast<int64_t>(r.kv_packed.size());
    check_capacity(q_packed, q_bytes, q_size, "q_packed", "q_bytes");
    check_capacity(kv_packed, kv_bytes, kv_size, "kv_packed", "kv_bytes");
    FLASHOMNI_CHECK_ARG(q_indptr != nullptr, "q_indptr", "must not be NULL");
    FLASHOMNI_CHECK_ARG(kv_indptr != nullptr, "kv_indptr", "must not be NULL");
    std::copy(r.q_packed.begin(), r.q_packed.end(), q_packed);
    std::copy(r.kv_packed.begin(), r.kv_packed.end(), kv_packed);
    std::copy(r.q_indptr.begin(), r.q_indptr.end(), q_indptr);
    std::copy(r.kv_indptr.begin(), r.kv_indptr.end(), kv_indptr);
  });
}

int flashomni_symbols_from_reference_packed(const fo_tensor* q_packed, const fo_tensor* q_indptr,
                                            const fo_tensor* kv_packed, const fo_tensor* kv_indptr,
                                            const fo_seqlens* seqlens, int32_t heads,
                                            int32_t block_q, int32_t block_kv, uint32_t* q_bits,
                                            size_t q_words, uint32_t* kv_bits, size_t kv_words) {
  return guarded([&] {
    const Symbols s = symbols_from_reference_packed(
        tensor_arg(q_packed, "q_packed"), tensor_arg(q_indptr, "q_indptr"),
        tensor_arg(kv_packed, "kv_packed"), tensor_arg(kv_indptr, "kv_indptr"), to_seqlens(seqlens),
        heads, block_q, block_kv);
    copy_words(s, q_bits, q_words, kv_bits, kv_words);
  });
}

int flashomni_symbols_densities(const fo_symbols* symbols, const fo_seqlens* seqlens,
                                fo_symbol_density* densities, size_t count) {
  return guarded([&] {
    const std::vector<SymbolDensity> d =
        symbol_densities(symbols_arg(symbols), to_seqlens(seqlens));
    check_capacity(densities, count, static_cast<int64_t>(d.size()), "densities", "count");
    for (std::size_t i = 0; i < d.size(); ++i) densities[i] = to_fo(d[i]);
  });
}

int flashomni_symbols_density_summary(const fo_symbols* symbols, const fo_seqlens* seqlens,
                                      fo_density_summary* summary) {
  return guarded([&] {
    FLASHOMNI_CHECK_ARG(summary != nullptr, "summary", "must not be NULL");
    const SymbolDensitySummary s =
        symbol_density_summary(symbols_arg(symbols), to_seqlens(seqlens));
    *summary = fo_density_summary{to_fo(s.query), to_fo(s.query_token), to_fo(s.kv), to_fo(s.pair),
                                  to_fo(s.token_pair)};
  });
}

}  // extern "C"
