// FlashOmni core: check_gemm_q / check_gemm_o, the argument validators both GEMM backends run
// first. Symbol rules for the projections (documented in gemm.h): the GEMMs see no key sequence and
// only a slice of the query sequence (rows row_offset .. row_offset + M - 1, e.g. FLUX's image
// tokens), so the symbols must match batch and heads exactly and their query grid must cover the
// slice: row_offset >= 0 and row_offset + M <= q_blocks * block_q. Block sizes and pointers are
// checked as for attention; bits are never read here (the slice says nothing about out-of-range
// bits).
#include <cstdint>

#include "core/check_layout.h"
#include "flashomni/gemm.h"

namespace flashomni {
namespace {

using detail::check_layout;
using detail::check_same_dtype;
using detail::check_shape;
using detail::kMaxInt32;

void check_heads(int32_t heads, int32_t head_dim, Device device) {
  FLASHOMNI_CHECK_ARG(heads >= 1, "heads", "expected >= 1, got ", heads);
  FLASHOMNI_CHECK_ARG(head_dim >= 1, "head_dim", "expected >= 1, got ", head_dim);
  if (device == Device::kCUDA) {
    FLASHOMNI_CHECK_ARG(head_dim == 64 || head_dim == 128 || head_dim == 256, "head_dim",
                        "CUDA kernels support 64, 128 or 256, got ", head_dim);
  }
  FLASHOMNI_CHECK_ARG(static_cast<int64_t>(heads) * head_dim <= kMaxInt32, "heads",
                      "heads * head_dim overflows int32: ", heads, " * ", head_dim);
}

// Returns the batch (1 for 2-D inputs) after checking the activation's rank and rows.
int64_t check_activation(const TensorRef& t, const char* name, Device device) {
  check_defined(t, name);
  detail::check_storage_dtype(t, name, device);
  check_ndim(t, name, {2, 3});
  check_layout(t, name, device);
  const int64_t batch = t.ndim == 3 ? t.shape[0] : 1;
  FLASHOMNI_CHECK_ARG(batch >= 1 && batch <= kMaxInt32, name, "need batch >= 1, got shape ",
                      detail::shape_str(t));
  FLASHOMNI_CHECK_ARG(t.shape[t.ndim - 2] <= kMaxInt32, name,
                      "too many rows: ", t.shape[t.ndim - 2]);
  FLASHOMNI_CHECK_ARG(t.shape[t.ndim - 1] >= 1, name, "need at least one column, got shape ",
                      detail::shape_str(t));
  return batch;
}

// out/cache: [M, N] for 2-D activations, [B, M, N] for 3-D ones.
void check_rows_like(const TensorRef& t, const char* name, const TensorRef& act, int64_t cols,
                     const char* dims2, const char* dims3) {
  if (act.ndim == 3) {
    check_shape(t, name, {act.shape[0], act.shape[1], cols}, dims3);
  } else {
    check_shape(t, name, {act.shape[0], cols}, dims2);
  }
}

void check_bias(const TensorRef& bias, DType dtype, const char* act_name, int64_t n,
                Device device) {
  if (!bias.defined()) return;
  check_same_dtype(bias, "bias", dtype, act_name);
  check_shape(bias, "bias", {n}, "[N]");
  check_layout(bias, "bias", device);
}

void check_gemm_symbols(const SymbolsRef* s, Device device, int64_t batch, int32_t heads,
                        int64_t rows, int32_t row_offset) {
  FLASHOMNI_CHECK_ARG(row_offset >= 0, "row_offset", "expected >= 0, got ", row_offset);
  if (s == nullptr) return;
  FLASHOMNI_CHECK_ARG(s->device == device, "symbols.device", "expected ",
                      device == Device::kCPU ? "CPU" : "CUDA", " symbols, got ",
                      s->device == Device::kCPU ? "CPU" : "CUDA");
  const SymbolShape& sh = s->shape;
  FLASHOMNI_CHECK_ARG(sh.q_blocks >= 0, "symbols.q_blocks", "expected >= 0, got ", sh.q_blocks);
  FLASHOMNI_CHECK_ARG(sh.kv_blocks >= 0, "symbols.kv_blocks", "expected >= 0, got ", sh.kv_blocks);
  // The shape validator compares against sequences of exactly q_blocks * block_q and
  // kv_blocks * block_kv tokens: that leaves it checking block sizes, batch, heads and pointers.
  SeqLens lens;
  lens.batch = static_cast<int32_t>(batch);
  const int64_t q_tokens = static_cast<int64_t>(sh.q_blocks) * sh.block_q;
  const int64_t kv_tokens = static_cast<int64_t>(sh.kv_blocks) * sh.block_kv;
  FLASHOMNI_CHECK_ARG(q_tokens <= kMaxInt32 && kv_tokens <= kMaxInt32, "symbols.shape",
                      "block grid too large: ", sh.q_blocks, " x ", sh.block_q, " query and ",
                      sh.kv_blocks, " x ", sh.block_kv, " key tokens");
  lens.seqlen_q = static_cast<int32_t>(q_tokens);
  lens.seqlen_kv = static_cast<int32_t>(kv_tokens);
  validate_symbol_shape(*s, lens, heads);
  FLASHOMNI_CHECK_ARG(row_offset + rows <= q_tokens, "symbols.q_blocks", "query grid of ",
                      sh.q_blocks, " blocks x ", sh.block_q, " = ", q_tokens,
                      " tokens does not cover rows row_offset + M = ", row_offset, " + ", rows,
                      " = ", row_offset + rows);
}

}  // namespace

void check_gemm_q(const GemmQParams& p, Device device) {
  const int64_t batch = check_activation(p.x, "x", device);
  check_heads(p.heads, p.head_dim, device);
  const int64_t n = static_cast<int64_t>(p.heads) * p.head_dim;
  const int64_t k = p.x.shape[p.x.ndim - 1];
  check_defined(p.weight, "weight");
  check_same_dtype(p.weight, "weight", p.x.dtype, "x");
  check_shape(p.weight, "weight", {n, k}, "[heads*head_dim, K]");
  check_layout(p.weight, "weight", device);
  check_bias(p.bias, p.x.dtype, "x", n, device);
  check_defined(p.out, "out");
  check_same_dtype(p.out, "out", p.x.dtype, "x");
  check_rows_like(p.out, "out", p.x, n, "[M, heads*head_dim]", "[B, M, heads*head_dim]");
  check_layout(p.out, "out", device);
  check_gemm_symbols(p.symbols, device, batch, p.heads, p.x.shape[p.x.ndim - 2], p.row_offset);
}

void check_gemm_o(const GemmOParams& p, Device device, bool update) {
  const int64_t batch = check_activation(p.a, "a", device);
  check_heads(p.heads, p.head_dim, device);
  const int64_t k_heads = static_cast<int64_t>(p.heads) * p.head_dim;
  const int64_t k = p.a.shape[p.a.ndim - 1];
  FLASHOMNI_CHECK_ARG(k >= k_heads, "a", "expected at least heads*head_dim = ", k_heads,
                      " columns (attention output, then extra always-active ones), got ", k);
  check_defined(p.weight, "weight");
  check_same_dtype(p.weight, "weight", p.a.dtype, "a");
  check_ndim(p.weight, "weight", {2});
  const int64_t n = p.weight.shape[0];
  FLASHOMNI_CHECK_ARG(n >= 1, "weight", "need at least one output row, got shape ",
                      detail::shape_str(p.weight));
  check_shape(p.weight, "weight", {n, k}, "[N, heads*head_dim + extra]");
  check_layout(p.weight, "weight", device);
  // dispatch ignores bias (it already sits in the cache) but still rejects a malformed one.
  check_bias(p.bias, p.a.dtype, "a", n, device);
  check_defined(p.cache, "cache");
  FLASHOMNI_CHECK_ARG(p.cache.dtype == DType::kFloat32 || p.cache.dtype == p.a.dtype, "cache",
                      "expected dtype float32 or ", dtype_name(p.a.dtype), " (same as a), got ",
                      dtype_name(p.cache.dtype));
  check_rows_like(p.cache, "cache", p.a, n, "[M, N]", "[B, M, N]");
  check_layout(p.cache, "cache", device);
  // An update without out is cache-only (gemm.h): only C is computed; dispatch needs out.
  if (!update || p.out.defined()) {
    check_defined(p.out, "out");
    check_same_dtype(p.out, "out", p.a.dtype, "a");
    check_rows_like(p.out, "out", p.a, n, "[M, N]", "[B, M, N]");
    check_layout(p.out, "out", device);
    FLASHOMNI_CHECK_ARG(p.out.data != p.cache.data, "out",
                        update ? "must not alias cache: gemm_o_update writes both"
                               : "must not alias cache: the next gemm_o_dispatch still needs it");
  }
  check_gemm_symbols(p.symbols, device, batch, p.heads, p.a.shape[p.a.ndim - 2], p.row_offset);
}

}  // namespace flashomni
