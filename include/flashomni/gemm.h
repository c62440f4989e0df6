// FlashOmni core: arguments of gemm_q (spec §3) and gemm_o_update / gemm_o_dispatch (spec §4).
#pragma once

#include <cstdint>

#include "flashomni/symbols.h"
#include "flashomni/tensor.h"

namespace flashomni {

// Q = X W^T + b, computed only for rows whose (query block, head) is active:
//   x [M, K] or [B, M, K]; weight [heads*head_dim, K] (nn.Linear layout); bias [heads*head_dim]
//   optional; out [M, heads*head_dim] or [B, M, heads*head_dim] (head-major columns).
// Row m of batch entry b is token (m + row_offset) of the symbol sequence (text first or last:
// FLUX projects image tokens separately with row_offset = 512), so it belongs to query block
// (m + row_offset) / block_q. Inactive (row, head) outputs are not written.
struct GemmQParams {
  TensorRef x, weight, bias, out;
  int32_t heads = 0;
  int32_t head_dim = 0;
  int32_t row_offset = 0;
  const SymbolsRef* symbols = nullptr;  // nullptr means dense
};

// Y = C + sum_{active heads} A_h W_h^T + A_extra W_extra^T, with
// C = b + sum_{cached heads} A_h W_h^T.
//   a [M, heads*head_dim + extra] or [B, M, ...]: attention output (head-major) then `extra`
//     always-active columns (FLUX single-stream [attention | MLP]);
//   weight [N, heads*head_dim + extra]; bias [N] optional;
//   cache [M, N] or [B, M, N], fp32 or the storage dtype; out like cache in the storage dtype.
// gemm_o_update writes cache and out in one pass; gemm_o_dispatch reads cache, writes out.
// Cache-only update: gemm_o_update with out.data == nullptr computes and stores C alone (Y is
// neither computed nor written; the active heads and extra columns are not read). The engine
// recomputes older forecast points C_p under new symbols this way: the cached heads only, about
// (1 - query density) of a dense GEMM instead of a full update plus a thrown-away Y. C is
// bit-identical to a full update's C on the CPU oracle. gemm_o_dispatch still requires out.
// On CUDA a 16-bit cache is the faster choice for dispatch: its tile is loaded by TMA while the
// mainloop runs (an fp32 tile is loaded before it), 10-37 % faster at K = 3072 and M >= 16896
// on the H100 (bench/results/gemm_notes.md item 11); update followed by dispatch with the same
// symbols gives bit-identical Y on CUDA too, for either cache dtype.
struct GemmOParams {
  TensorRef a, weight, bias, cache, out;
  int32_t heads = 0;
  int32_t head_dim = 0;
  int32_t row_offset = 0;
  const SymbolsRef* symbols = nullptr;  // nullptr means every head active
};

// Validators (src/core/check_gemm.cpp), throwing fail_argument naming the argument: storage dtype
// bf16/fp16 (CPU also fp32/fp64) shared by x/a, weight, bias and out; layouts as for attention
// (16-byte data and row strides on CUDA, head_dim 64/128/256 there). Symbols: batch and heads
// equal to the GEMM's, block sizes valid, and the query grid must cover the rows:
// row_offset >= 0 and row_offset + M <= q_blocks * block_q (bits are not read). GEMM-O: out must
// not alias cache; dispatch ignores bias (it is already in the cache) but still checks it.
// check_gemm_o(update = true) accepts an undefined out (cache-only); dispatch rejects it.
void check_gemm_q(const GemmQParams& p, Device device);
void check_gemm_o(const GemmOParams& p, Device device, bool update);

// CPU oracle rounding contract (double accumulation, one rounding per store): gemm_o_update stores
// C rounded to the cache dtype and writes Y = C_stored + active heads + extra, computed exactly as
// gemm_o_dispatch computes it from the stored C, so update followed by dispatch with the same
// symbols gives bit-identical Y.
namespace cpu {
void gemm_q(const GemmQParams& p);
void gemm_o_update(const GemmOParams& p);
void gemm_o_dispatch(const GemmOParams& p);
}  // namespace cpu

}  // namespace flashomni
