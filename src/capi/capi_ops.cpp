// FlashOmni C API layer: library queries, argument conversion and the operations' entry points.
// Converts the plain C structs of flashomni.h into TensorRef / SymbolsRef, dispatches on the
// device (CPU backend or CUDA launchers) and turns every exception into a status + message.
#include <cstring>
#include <type_traits>

#include "capi/capi_common.h"
#include "flashomni/attention.h"
#include "flashomni/cuda_ops.h"  // declarations only; calls are instantiated with CUDA alone
#include "flashomni/flashomni.h"
#include "flashomni/gemm.h"

#ifdef FLASHOMNI_WITH_CUDA
#include "cuda/runtime.h"
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

Device device_of(const AttentionParams& p) {
  return p.q.device;
}
Device device_of(const GemmQParams& p) {
  return p.x.device;
}
Device device_of(const GemmOParams& p) {
  return p.a.device;
}

constexpr std::size_t v1_size(const fo_attention_args*) {
  return kAttentionArgsV1;
}
constexpr std::size_t v1_size(const fo_gemm_q_args*) {
  return kGemmQArgsV1;
}
constexpr std::size_t v1_size(const fo_gemm_o_args*) {
  return kGemmOArgsV1;
}

// The body of every operation's entry point: convert the C struct, then run `cpu_op` for CPU
// tensors or `cuda_op` for CUDA ones. The ops are generic lambdas, so a build without CUDA never
// instantiates (or links) the CUDA call.
template <typename CArgs, typename CpuOp, typename CudaOp>
void run_on_device(const CArgs* args, [[maybe_unused]] const char* op, CpuOp&& cpu_op,
                   [[maybe_unused]] CudaOp&& cuda_op) {
  const CArgs a = read_args(args, v1_size(args), "args");
  SymbolsHolder holder;
  const auto p = to_params(a, holder);
  if (device_of(p) == Device::kCPU) return cpu_op(p);
#ifdef FLASHOMNI_WITH_CUDA
  cuda_op(p);
#else
  fail_unsupported(op, ": CUDA tensors given but libflashomni was built without CUDA");
#endif
}

void check_bytes_out(const size_t* bytes) {
  FLASHOMNI_CHECK_ARG(bytes != nullptr, "bytes", "must not be NULL");
}

// fo_gemm_plan's contents: a marker (a zeroed or foreign struct is not a plan), the backend it was
// made on, and the CUDA layer's record (op only on the CPU backend, which has no list).
struct StoredPlan {
  uint32_t marker;
  int32_t device;
  cuda::GemmPlan plan;
};
static_assert(sizeof(StoredPlan) <= sizeof(fo_gemm_plan) &&
                  std::is_trivially_copyable_v<StoredPlan>,
              "fo_gemm_plan holds a StoredPlan, copied bytewise");
constexpr uint32_t kPlanMarker = 0x4c504f46u;  // "FOPL"

// The args' `plan` (ABI 4), NULL for older struct sizes; read_args checks the size itself.
template <typename CArgs>
const fo_gemm_plan* plan_field(const CArgs* args) {
  if (args == nullptr || args->struct_size < 0) return nullptr;
  const auto size = static_cast<std::size_t>(args->struct_size);
  return size >= offsetof(CArgs, plan) + sizeof(void*) ? args->plan : nullptr;
}

// Reads the args' plan for operation `op` on `device` into *plan; returns whether the call
// runs on it (false: no plan given, or a CPU plan, whose run computes the whole operation).
bool plan_of(const fo_gemm_plan* given, cuda::GemmPlanOp op, Device device, cuda::GemmPlan* plan) {
  if (given == nullptr) return false;
  StoredPlan stored;
  std::memcpy(static_cast<void*>(&stored), given, sizeof(stored));
  FLASHOMNI_CHECK_ARG(stored.marker == kPlanMarker, "plan",
                      "was not filled by a flashomni_gemm_*_plan call");
  FLASHOMNI_CHECK_ARG(stored.device == static_cast<int32_t>(device), "plan",
                      "was made for tensors on another device type");
  FLASHOMNI_CHECK_ARG(stored.plan.op == op, "plan", "was made for another operation");
  *plan = stored.plan;
  return device == Device::kCUDA;
}

// The body of the *_plan entry points: `cpu_check` validates CPU arguments (no list to plan),
// `cuda_plan` enqueues the planner and returns its record; *out is written on success only.
template <typename CArgs, typename CpuCheck, typename CudaPlan>
void make_plan(const CArgs* args, const char* op, cuda::GemmPlanOp plan_op, fo_gemm_plan* out,
               CpuCheck&& cpu_check, CudaPlan&& cuda_plan) {
  FLASHOMNI_CHECK_ARG(out != nullptr, "plan", "must not be NULL");
  StoredPlan stored{kPlanMarker, static_cast<int32_t>(Device::kCPU), {}};
  stored.plan.op = plan_op;
  run_on_device(args, op, cpu_check, [&](const auto& p) {
    stored.device = static_cast<int32_t>(Device::kCUDA);
    stored.plan = cuda_plan(p);
  });
  fo_gemm_plan filled{};
  std::memcpy(&filled, &stored, sizeof(stored));
  *out = filled;
}

// The body of the GEMM entry points: `cpu_op(p)` on CPU tensors (after checking a given plan's
// op), `cuda_op(p, plan)` on CUDA ones, with the args' plan record or nullptr.
template <typename CArgs, typename CpuOp, typename CudaOp>
void run_gemm(const CArgs* args, const char* op, cuda::GemmPlanOp plan_op, CpuOp&& cpu_op,
              [[maybe_unused]] CudaOp&& cuda_op) {
  cuda::GemmPlan plan;
  const fo_gemm_plan* given = plan_field(args);
  run_on_device(
      args, op,
      [&](const auto& p) {
        plan_of(given, plan_op, Device::kCPU, &plan);
        cpu_op(p);
      },
      [&](const auto& p) {
        const bool planned = plan_of(given, plan_op, Device::kCUDA, &plan);
        cuda_op(p, planned ? &plan : nullptr);
      });
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
    run_on_device(
        args, "sparse_attention_workspace_size", [](const auto&) {},
        [&](const auto& p) { *bytes = cuda::sparse_attention_workspace_size(p); });
  });
}

int flashomni_sparse_attention(const fo_attention_args* args, void* workspace,
                               size_t workspace_bytes, void* stream) {
  return guarded([&] {
    run_on_device(
        args, "sparse_attention", [](const auto& p) { cpu::sparse_attention(p); },
        [&](const auto& p) { cuda::sparse_attention(p, workspace, workspace_bytes, stream); });
  });
}

int flashomni_gemm_q_workspace_size(const fo_gemm_q_args* args, size_t* bytes) {
  return guarded([&] {
    check_bytes_out(bytes);
    *bytes = 0;
    run_on_device(
        args, "gemm_q_workspace_size", [](const auto&) {},
        [&](const auto& p) { *bytes = cuda::gemm_q_workspace_size(p); });
  });
}

int flashomni_gemm_q(const fo_gemm_q_args* args, void* workspace, size_t workspace_bytes,
                     void* stream) {
  return guarded([&] {
    run_gemm(
        args, "gemm_q", cuda::GemmPlanOp::kQ, [](const auto& p) { cpu::gemm_q(p); },
        [&](const auto& p, const cuda::GemmPlan* plan) {
          cuda::gemm_q(p, workspace, workspace_bytes, stream, plan);
        });
  });
}

int flashomni_gemm_q_plan(const fo_gemm_q_args* args, void* workspace, size_t workspace_bytes,
                          void* stream, fo_gemm_plan* plan) {
  return guarded([&] {
    make_plan(
        args, "gemm_q_plan", cuda::GemmPlanOp::kQ, plan,
        [](const auto& p) { check_gemm_q(p, Device::kCPU); },
        [&](const auto& p) { return cuda::gemm_q_plan(p, workspace, workspace_bytes, stream); });
  });
}

int flashomni_gemm_o_workspace_size(const fo_gemm_o_args* args, size_t* bytes) {
  return guarded([&] {
    check_bytes_out(bytes);
    *bytes = 0;
    run_on_device(
        args, "gemm_o_workspace_size", [](const auto&) {},
        [&](const auto& p) { *bytes = cuda::gemm_o_workspace_size(p); });
  });
}

int flashomni_gemm_o_update(const fo_gemm_o_args* args, void* workspace, size_t workspace_bytes,
                            void* stream) {
  return guarded([&] {
    run_gemm(
        args, "gemm_o_update", cuda::GemmPlanOp::kOUpdate,
        [](const auto& p) { cpu::gemm_o_update(p); },
        [&](const auto& p, const cuda::GemmPlan* plan) {
          cuda::gemm_o_update(p, workspace, workspace_bytes, stream, plan);
        });
  });
}

int flashomni_gemm_o_update_plan(const fo_gemm_o_args* args, void* workspace,
                                 size_t workspace_bytes, void* stream, fo_gemm_plan* plan) {
  return guarded([&] {
    make_plan(
        args, "gemm_o_update_plan", cuda::GemmPlanOp::kOUpdate, plan,
        [](const auto& p) { check_gemm_o(p, Device::kCPU, true); },
        [&](const auto& p) {
          return cuda::gemm_o_update_plan(p, workspace, workspace_bytes, stream);
        });
  });
}

int flashomni_gemm_o_dispatch(const fo_gemm_o_args* args, void* workspace, size_t workspace_bytes,
                              void* stream) {
  return guarded([&] {
    run_gemm(
        args, "gemm_o_dispatch", cuda::GemmPlanOp::kODispatch,
        [](const auto& p) { cpu::gemm_o_dispatch(p); },
        [&](const auto& p, const cuda::GemmPlan* plan) {
          cuda::gemm_o_dispatch(p, workspace, workspace_bytes, stream, plan);
        });
  });
}

int flashomni_gemm_o_dispatch_plan(const fo_gemm_o_args* args, void* workspace,
                                   size_t workspace_bytes, void* stream, fo_gemm_plan* plan) {
  return guarded([&] {
    make_plan(
        args, "gemm_o_dispatch_plan", cuda::GemmPlanOp::kODispatch, plan,
        [](const auto& p) { check_gemm_o(p, Device::kCPU, false); },
        [&](const auto& p) {
          return cuda::gemm_o_dispatch_plan(p, workspace, workspace_bytes, stream);
        });
  });
}

}  // extern "C"
