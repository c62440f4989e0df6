// FlashOmni C API layer: the thread-local error message and the C-struct -> core-type conversions.
#include "capi/capi_common.h"

namespace flashomni::capi {
namespace {
// One message per thread so concurrent callers never read each other's errors.
thread_local std::string g_last_error;
}  // namespace

void set_last_error(const char* message) {
  try {
    g_last_error = message;
  } catch (...) {
    g_last_error.clear();
  }
}

const char* last_error_message() {
  return g_last_error.c_str();
}

DType to_dtype(int32_t value, const std::string& name) {
  FLASHOMNI_CHECK_ARG(value >= static_cast<int32_t>(DType::kFloat32) &&
                          value <= static_cast<int32_t>(DType::kUInt8),
                      name, "expected an fo_dtype value in [0, 6], got ", value);
  return static_cast<DType>(value);
}

Device to_device(int32_t value, const std::string& name) {
  FLASHOMNI_CHECK_ARG(value == FO_CPU || value == FO_CUDA, name,
                      "expected FO_CPU (0) or FO_CUDA (1), got ", value);
  return static_cast<Device>(value);
}

TensorRef to_tensor_ref(const fo_tensor& t, const char* name) {
  TensorRef r;
  if (t.data == nullptr) return r;
  const std::string n(name);
  r.data = t.data;
  r.dtype = to_dtype(t.dtype, n + ".dtype");
  r.device = to_device(t.device, n + ".device");
  FLASHOMNI_CHECK_ARG(t.ndim >= 0 && t.ndim <= FO_MAX_DIMS, n + ".ndim", "expected 0 to ",
                      FO_MAX_DIMS, " dims, got ", t.ndim);
  r.ndim = t.ndim;
  for (int d = 0; d < t.ndim; ++d) {
    FLASHOMNI_CHECK_ARG(t.shape[d] >= 0, n + ".shape", "dim ", d, " must be >= 0, got ",
                        t.shape[d]);
    r.shape[d] = t.shape[d];
    r.stride[d] = t.strides[d];
  }
  return r;
}

SymbolsRef to_symbols_ref(const fo_symbols& s, const char* name) {
  const std::string n(name);
  SymbolsRef r;
  r.q_bits = s.q_bits;
  r.kv_bits = s.kv_bits;
  r.device = to_device(s.device, n + ".device");
  r.shape.batch = s.batch;
  r.shape.heads = s.heads;
  r.shape.q_blocks = s.q_blocks;
  r.shape.kv_blocks = s.kv_blocks;
  r.shape.block_q = s.block_q;
  r.shape.block_kv = s.block_kv;
  FLASHOMNI_CHECK_ARG(s.batch >= 0 && s.heads >= 0 && s.q_blocks >= 0 && s.kv_blocks >= 0, n,
                      "batch, heads, q_blocks and kv_blocks must be >= 0, got ", s.batch, ", ",
                      s.heads, ", ", s.q_blocks, ", ", s.kv_blocks);
  FLASHOMNI_CHECK_ARG(s.q_bits != nullptr, n + ".q_bits", "must not be NULL");
  FLASHOMNI_CHECK_ARG(s.kv_bits != nullptr, n + ".kv_bits", "must not be NULL");
  return r;
}

SeqLens to_seqlens(const fo_seqlens* s) {
  FLASHOMNI_CHECK_ARG(s != nullptr, "seqlens", "must not be NULL");
  SeqLens r;
  r.batch = s->batch;
  r.seqlen_q = s->seqlen_q;
  r.seqlen_kv = s->seqlen_kv;
  r.cu_seqlens_q = s->cu_seqlens_q;
  r.cu_seqlens_kv = s->cu_seqlens_kv;
  FLASHOMNI_CHECK_ARG((r.cu_seqlens_q == nullptr) == (r.cu_seqlens_kv == nullptr), "cu_seqlens_kv",
                      "cu_seqlens_q and cu_seqlens_kv must both be given or both "
                      "be NULL");
  validate_seqlens(r);
  return r;
}

}  // namespace flashomni::capi
