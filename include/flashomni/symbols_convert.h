// FlashOmni core: host converters between the packed Symbols and three outside formats (spec §1):
// dense boolean masks, FlexAttention-style block lists, and the FlashOmni reference's byte format.
// All inputs are host tensors, validated with errors that name the argument; every Symbols they
// return passes validate_symbols(result.ref(), seqlens, heads). docs/symbols.md has the details.
#pragma once

#include <cstdint>
#include <vector>

#include "flashomni/symbols.h"
#include "flashomni/tensor.h"

namespace flashomni {

// ---- Dense boolean masks
// ------------------------------------------------------------------------- q_mask  uint8 [B, H,
// q_blocks]             1 = compute, 0 = cached kv_mask uint8 [B, H, q_blocks, kv_blocks]  1 =
// keep,    0 = skip q_blocks/kv_blocks are the padded counts of symbol_shape_for(seqlens, H,
// block_q, block_kv); values must be 0 or 1, and entries past a request's own block counts must be
// 0 (as in the symbols). Any strides are accepted.
//   Symbols s = symbols_from_masks(make_tensor(qm, DType::kUInt8, {B, H, nq}),
//                                  make_tensor(km, DType::kUInt8, {B, H, nq, nk}), seqlens);
Symbols symbols_from_masks(const TensorRef& q_mask, const TensorRef& kv_mask,
                           const SeqLens& seqlens, int32_t block_q = kDefaultBlockQ,
                           int32_t block_kv = kDefaultBlockKV);
// Writes every entry of both masks (padding entries 0). Validates the symbols first.
void symbols_to_masks(const SymbolsRef& symbols, const SeqLens& seqlens, const TensorRef& q_mask,
                      const TensorRef& kv_mask);

// ---- FlexAttention-style block lists
// ------------------------------------------------------------- kv_num_blocks int32 [B, H,
// q_blocks]           number of kept key blocks of row (b, h, i) kv_indices    int32 [B, H,
// q_blocks, max_kv]   the first kv_num_blocks[b,h,i] entries are the
//                                                kept key blocks; the rest are ignored
// q_mask        uint8 [B, H, q_blocks] optional  (undefined TensorRef = every in-range block
// active) Counts must lie in [0, max_kv]; listed indices in [0, request kv blocks); duplicates are
// allowed (a block is kept once). Rows past a request's query block count must have count 0.
Symbols symbols_from_block_lists(const TensorRef& kv_num_blocks, const TensorRef& kv_indices,
                                 const TensorRef& q_mask, const SeqLens& seqlens,
                                 int32_t block_q = kDefaultBlockQ,
                                 int32_t block_kv = kDefaultBlockKV);
// Fills kv_indices in ascending order and pads each row's tail with 0, as FlexAttention's
// BlockMask does; max_kv must hold the longest row (kv_blocks always suffices). Rows are written
// whatever Sq says (Skv of a cached row is kept). q_mask is optional: undefined = not written.
void symbols_to_block_lists(const SymbolsRef& symbols, const SeqLens& seqlens,
                            const TensorRef& kv_num_blocks, const TensorRef& kv_indices,
                            const TensorRef& q_mask);

// ---- The FlashOmni reference's packed format
// ----------------------------------------------------- Per request r with nQ_r = ceil(q_len /
// block_q), nK_r = ceil(kv_len / block_kv):
//   Sq  segment: flags laid out [nQ_r, H],        flag (i, h)    at index i * H + h
//   Skv segment: flags laid out [nQ_r, H, nK_r],  flag (i, h, j) at index (i * H + h) * nK_r + j
// 8 flags per byte, least-significant bit first (flag k is bit k % 8 of byte k / 8), each segment
// starting on a byte boundary with its unused high bits 0. q_indptr/kv_indptr: int32 [B + 1] byte
// offsets, indptr[0] = 0, indptr[r + 1] - indptr[r] = ceil(flags_r / 8).
struct ReferencePackedSymbols {
  std::vector<uint8_t> q_packed;
  std::vector<int32_t> q_indptr;
  std::vector<uint8_t> kv_packed;
  std::vector<int32_t> kv_indptr;
};

// Validates the symbols first.
ReferencePackedSymbols symbols_to_reference_packed(const SymbolsRef& symbols,
                                                   const SeqLens& seqlens);
// q_packed/kv_packed uint8 [bytes] (at least indptr[B] bytes; any more are ignored),
// q_indptr/kv_indptr int32 [B + 1], all contiguous host tensors.
Symbols symbols_from_reference_packed(const TensorRef& q_packed, const TensorRef& q_indptr,
                                      const TensorRef& kv_packed, const TensorRef& kv_indptr,
                                      const SeqLens& seqlens, int32_t heads,
                                      int32_t block_q = kDefaultBlockQ,
                                      int32_t block_kv = kDefaultBlockKV);

}  // namespace flashomni
