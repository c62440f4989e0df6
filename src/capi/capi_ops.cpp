// FlashOmni C API layer: library queries, argument conversion and the operations' entry points.
// Converts the plain C structs of flashomni.h into TensorRef / SymbolsRef, dispatches on the
// device (CPU backend or CUDA launchers) and turns every exception into a status + message.
#include "capi/capi_common.h"
#include "flashomni/attention.h"
#include "flashomni/flashomni.h"
#include "flashomni/gemm.h"

#ifdef FLASHOMNI_WITH_CUDA
#include "cuda/runtime.h"
#include "flashomni/cuda_ops.h"
#endif

namespace flashomni::capi {
namespace {

// ABI version 1 sizes: everything up to and including `symbols`, the last field of version 1
// (stays valid when fields are appended).
constexpr std::size_t kAttentionArgsV1 = offsetof(fo_attention_args, symbols) + sizeof(void*);
constexpr std::size_t kGemmQArgsV1 = offsetof(fo_gemm_q_args, symbols) + sizeof(void*);
constexpr std::size_t kGemmOArgsV1 = offsetof(fo_gemm_o_args, symbols) + sizeof(void*);

struct SymbolsHolder {
  SymbolsRef ref;
  const SymbolsRef* get(const fo_symbols* s) {
    if (s == nullptr) return nullptr;
    ref = to_symbols_ref(*s, "symbols");
    return &ref;
  }
};

AttentionParams to_params(const fo_attention_args& a, SymbolsHolder& holder) {
  AttentionParams p;
  p.q = to_tensor_ref(a.q, "q");
  p.k = to_tensor_ref(a.k, "k");
  p.v = to_tensor_ref(a.v, "v");
  p.out = to_tensor_ref(a.out, "out");
  p.lse = to_tensor_ref(a.lse, "lse");
  p.cu_seqlens_q = to_tensor_ref(a.cu_seqlens_q, "cu_seqlens_q");
  p.cu_seqlens_kv = to_tensor_ref(a.cu_seqlens_kv, "cu_seqlens_kv");
  p.max_seqlen_q = a.max_seqlen_q;
  p.max_seqlen_kv = a.max_seqlen_kv;
  p.softmax_scale = a.softmax_scale;
  p.symbols = holder.get(a.symbols);
  return p;
}

GemmQParams to_params(const fo_gemm_q_args& a, SymbolsHolder& holder) {
  GemmQParams p;
  p.x = to_tensor_ref(a.x, "x");
  p.weight = to_tensor_ref(a.weight, "weight");
  p.bias = to_tensor_ref(a.bias, "bias");
  p.out = to_tensor_ref(a.out, "out");
  p.heads = a.heads;
  p.head_dim = a.head_dim;
  p.row_offset = a.row_offset;
  p.symbols = holder.get(a.symbols);
  return p;
}

GemmOParams to_params(const fo_gemm_o_args& a, SymbolsHolder& holder) {
  GemmOParams p;
  p.a = to_tensor_ref(a.a, "a");
  p.weight = to_tensor_ref(a.weight, "weight");
  p.bias = to_tensor_ref(a.bias, "bias");
  p.cache = to_tensor_ref(a.cache, "cache");
  p.out = to_tensor_ref(a.out, "out");
  p.heads = a.heads;
  p.head_dim = a.head_dim;
  p.row_offset = a.row_offset;
  p.symbols = holder.get(a.symbols);
  return p;
}

#ifndef FLASHOMNI_WITH_CUDA
[[noreturn]] void fail_no_cuda(const char* op) {
  fail_unsupported(op, ": CUDA tensors given but libflashomni was built without CUDA");
}
#endif

void check_bytes_out(const size_t* bytes) {
  FLASHOMNI_CHECK_ARG(bytes != nullptr, "bytes", "must not be NULL");
}

}  // namespace
}  // namespace flashomni::capi

using namespace flashomni;
using namespace flashomni::capi;

extern "C" {

const char* flashomni_version(void) {
  return "0.1.0";
}

int flashomni_abi_version(void) {
  return FLASHOMNI_ABI_VERSION;
}

int flashomni_has_cuda(void) {
#ifdef FLASHOMNI_WITH_CUDA
  try {
    return cuda::device_is_sm90() ? 1 : 0;
  } catch (...) {
    return 0;
  }
#else
  return 0;
#endif
}

const char* flashomni_last_error(void) {
  return last_error_message();
}

int flashomni_sparse_attention_workspace_size(const fo_attention_args* args, size_t* bytes) {
  return guarded([&] {
    check_bytes_out(bytes);
    *bytes = 0;
    const auto a = read_args(args, kAttentionArgsV1, "args");
    SymbolsHolder holder;
    const AttentionParams p = to_params(a, holder);
    if (p.q.device == Device::kCPU) return;
#ifdef FLASHOMNI_WITH_CUDA
    *bytes = cuda::sparse_attention_workspace_size(p);
#else
    fail_no_cuda("sparse_attention_workspace_size");
#endif
  });
}

int flashomni_sparse_attention(const fo_attention_args* args, void* workspace,
                               size_t workspace_bytes, void* stream) {
  return guarded([&] {
    const auto a = read_args(args, kAttentionArgsV1, "args");
    SymbolsHolder holder;
    const AttentionParams p = to_params(a, holder);
    if (p.q.device == Device::kCPU) return cpu::sparse_attention(p);
#ifdef FLASHOMNI_WITH_CUDA
    cuda::sparse_attention(p, workspace, workspace_bytes, stream);
#else
    (void)workspace, (void)workspace_bytes, (void)stream;
    fail_no_cuda("sparse_attention");
#endif
  });
}

int flashomni_gemm_q_workspace_size(const fo_gemm_q_args* args, size_t* bytes) {
  return guarded([&] {
    check_bytes_out(bytes);
    *bytes = 0;
    const auto a = read_args(args, kGemmQArgsV1, "args");
    SymbolsHolder holder;
    const GemmQParams p = to_params(a, holder);
    if (p.x.device == Device::kCPU) return;
#ifdef FLASHOMNI_WITH_CUDA
    *bytes = cuda::gemm_q_workspace_size(p);
#else
    fail_no_cuda("gemm_q_workspace_size");
#endif
  });
}

int flashomni_gemm_q(const fo_gemm_q_args* args, void* workspace, size_t workspace_bytes,
                     void* stream) {
  return guarded([&] {
    const auto a = read_args(args, kGemmQArgsV1, "args");
    SymbolsHolder holder;
    const GemmQParams p = to_params(a, holder);
    if (p.x.device == Device::kCPU) return cpu::gemm_q(p);
#ifdef FLASHOMNI_WITH_CUDA
    cuda::gemm_q(p, workspace, workspace_bytes, stream);
#else
    (void)workspace, (void)workspace_bytes, (void)stream;
    fail_no_cuda("gemm_q");
#endif
  });
}

int flashomni_gemm_o_workspace_size(const fo_gemm_o_args* args, size_t* bytes) {
  return guarded([&] {
    check_bytes_out(bytes);
    *bytes = 0;
    const auto a = read_args(args, kGemmOArgsV1, "args");
    SymbolsHolder holder;
    const GemmOParams p = to_params(a, holder);
    if (p.a.device == Device::kCPU) return;
#ifdef FLASHOMNI_WITH_CUDA
    *bytes = cuda::gemm_o_workspace_size(p);
#else
    fail_no_cuda("gemm_o_workspace_size");
#endif
  });
}

int flashomni_gemm_o_update(const fo_gemm_o_args* args, void* workspace, size_t workspace_bytes,
                            void* stream) {
  return guarded([&] {
    const auto a = read_args(args, kGemmOArgsV1, "args");
    SymbolsHolder holder;
    const GemmOParams p = to_params(a, holder);
    if (p.a.device == Device::kCPU) return cpu::gemm_o_update(p);
#ifdef FLASHOMNI_WITH_CUDA
    cuda::gemm_o_update(p, workspace, workspace_bytes, stream);
#else
    (void)workspace, (void)workspace_bytes, (void)stream;
    fail_no_cuda("gemm_o_update");
#endif
  });
}

int flashomni_gemm_o_dispatch(const fo_gemm_o_args* args, void* workspace, size_t workspace_bytes,
                              void* stream) {
  return guarded([&] {
    const auto a = read_args(args, kGemmOArgsV1, "args");
    SymbolsHolder holder;
    const GemmOParams p = to_params(a, holder);
    if (p.a.device == Device::kCPU) return cpu::gemm_o_dispatch(p);
#ifdef FLASHOMNI_WITH_CUDA
    cuda::gemm_o_dispatch(p, workspace, workspace_bytes, stream);
#else
    (void)workspace, (void)workspace_bytes, (void)stream;
    fail_no_cuda("gemm_o_dispatch");
#endif
  });
}

}  // extern "C"
