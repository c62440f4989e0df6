// FlashOmni C API layer: the symbol policy (flashomni_run_policy and its shape / workspace
// queries) and the Taylor forecast, dispatching on the device to the CPU oracle (policy.h,
// forecast.h) or the CUDA kernels (policy_cuda.h).
#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "capi/capi_common.h"
#include "flashomni/forecast.h"
#include "flashomni/policy.h"
#include "flashomni/symbols_stats.h"

#ifdef FLASHOMNI_WITH_CUDA
#include "flashomni/policy_cuda.h"
#endif

// The GPU writes SymbolDensity entries straight into the caller's fo_symbol_density array, and
// the CPU copies them bytewise: the two layouts must be the same.
static_assert(sizeof(fo_symbol_density) == sizeof(flashomni::SymbolDensity));
static_assert(offsetof(fo_symbol_density, active_q_blocks) ==
              offsetof(flashomni::SymbolDensity, active_q_blocks));
static_assert(offsetof(fo_symbol_density, kept_pairs) ==
              offsetof(flashomni::SymbolDensity, kept_pairs));
static_assert(offsetof(fo_symbol_density, kv_tokens) ==
              offsetof(flashomni::SymbolDensity, kv_tokens));
static_assert(offsetof(fo_symbol_density, query_density) ==
              offsetof(flashomni::SymbolDensity, query_density));
static_assert(offsetof(fo_symbol_density, token_pair_density) ==
              offsetof(flashomni::SymbolDensity, token_pair_density));

namespace flashomni::capi {
namespace {

// ABI version 2 sizes (the first version with these structs); ABI 3 appended query_score,
// out_now and out_prev to fo_policy_args (zero when absent: the text-image score).
constexpr std::size_t kPolicyArgsV2 = offsetof(fo_policy_args, query_score);
static_assert(FO_QUERY_SCORE_TEXT_IMAGE == static_cast<int>(flashomni::QueryScore::kTextImage) &&
              FO_QUERY_SCORE_OUTPUT_CHANGE ==
                  static_cast<int>(flashomni::QueryScore::kOutputChange));
constexpr std::size_t kForecastArgsV2 = sizeof(fo_forecast_args);

PolicyConfig to_config(const fo_policy_args& a) {
  PolicyConfig c;
  c.tau_q = a.tau_q;
  c.tau_kv = a.tau_kv;
  c.num_steps = a.num_steps;
  c.kv_top_k = a.kv_top_k;
  c.cache_queries = a.cache_queries != 0;
  c.skip_kv = a.skip_kv != 0;
  c.keep_diagonal = a.keep_diagonal != 0;
  c.keep_text_kv = a.keep_text_kv != 0;
  c.skip_kv_for_text = a.skip_kv_for_text != 0;
  c.weight_by_tokens = a.weight_by_tokens != 0;
  c.softmax_scale = a.softmax_scale;
  FLASHOMNI_CHECK_ARG(
      a.query_score == FO_QUERY_SCORE_TEXT_IMAGE || a.query_score == FO_QUERY_SCORE_OUTPUT_CHANGE,
      "query_score",
      "expected FO_QUERY_SCORE_TEXT_IMAGE (0) or FO_QUERY_SCORE_OUTPUT_CHANGE (1), got ",
      a.query_score);
  c.query_score = static_cast<QueryScore>(a.query_score);
  return c;
}

int32_t block_or_default(int32_t block, int32_t fallback) {
  return block == 0 ? fallback : block;
}

// int32 [R, 2] host ranges (any strides).
std::vector<TextRange> host_text(const TensorRef& t) {
  std::vector<TextRange> out;
  if (!t.defined()) return out;
  check_dtype(t, "text", {DType::kInt32});
  check_ndim(t, "text", {2});
  FLASHOMNI_CHECK_ARG(t.shape[1] == 2, "text",
                      "expected int32 [R, 2] ([begin, end) per row), got [", t.shape[0], ", ",
                      t.shape[1], "]");
  const auto* v = static_cast<const int32_t*>(t.data);
  for (int64_t r = 0; r < t.shape[0]; ++r) {
    out.push_back(TextRange{v[r * t.stride[0]], v[r * t.stride[0] + t.stride[1]]});
  }
  return out;
}

// Host view of the CPU call: PolicyParams plus the storage its SeqLens points into.
struct CpuPolicy {
  PolicyParams params;
  std::vector<int32_t> cu_q, cu_kv;
};

const int32_t* host_offsets(const TensorRef& t, const char* name, std::vector<int32_t>& copy) {
  check_device(t, name, Device::kCPU);
  check_dtype(t, name, {DType::kInt32});
  check_ndim(t, name, {1});
  FLASHOMNI_CHECK_ARG(t.shape[0] >= 2, name, "expected int32 [B + 1] with B >= 1, got ", t.shape[0],
                      " entries");
  copy.resize(static_cast<std::size_t>(t.shape[0]));
  for (int64_t i = 0; i < t.shape[0]; ++i)
    copy[i] = static_cast<const int32_t*>(t.data)[i * t.stride[0]];
  return copy.data();
}

void cpu_policy(const fo_policy_args& a, CpuPolicy& out) {
  PolicyParams& p = out.params;
  p.q = to_tensor_ref(a.q, "q");
  p.k = to_tensor_ref(a.k, "k");
  check_defined(p.q, "q");
  check_defined(p.k, "k");
  const TensorRef cu_q = to_tensor_ref(a.cu_seqlens_q, "cu_seqlens_q");
  const TensorRef cu_kv = to_tensor_ref(a.cu_seqlens_kv, "cu_seqlens_kv");
  FLASHOMNI_CHECK_ARG(cu_q.defined() == cu_kv.defined(), "cu_seqlens_kv",
                      "cu_seqlens_q and cu_seqlens_kv must both be given or both be absent");
  SeqLens& s = p.seqlens;
  if (cu_q.defined()) {
    s.cu_seqlens_q = host_offsets(cu_q, "cu_seqlens_q", out.cu_q);
    s.cu_seqlens_kv = host_offsets(cu_kv, "cu_seqlens_kv", out.cu_kv);
    FLASHOMNI_CHECK_ARG(out.cu_kv.size() == out.cu_q.size(), "cu_seqlens_kv", "expected ",
                        out.cu_q.size(), " entries like cu_seqlens_q, got ", out.cu_kv.size());
    s.batch = static_cast<int32_t>(out.cu_q.size() - 1);
    validate_seqlens(s);
    for (int32_t b = 0; b < s.batch; ++b) {
      s.seqlen_q = std::max(s.seqlen_q, s.q_len(b));
      s.seqlen_kv = std::max(s.seqlen_kv, s.kv_len(b));
    }
    // As sparse_attention on the CPU: a given maximum must be the longest request.
    FLASHOMNI_CHECK_ARG(a.max_seqlen_q == 0 || a.max_seqlen_q == s.seqlen_q, "max_seqlen_q",
                        "expected 0 or the longest query length ", s.seqlen_q, ", got ",
                        a.max_seqlen_q);
    FLASHOMNI_CHECK_ARG(a.max_seqlen_kv == 0 || a.max_seqlen_kv == s.seqlen_kv, "max_seqlen_kv",
                        "expected 0 or the longest key length ", s.seqlen_kv, ", got ",
                        a.max_seqlen_kv);
  } else {
    check_ndim(p.q, "q", {4});
    check_ndim(p.k, "k", {4});
    s.batch = static_cast<int32_t>(p.q.shape[0]);
    s.seqlen_q = static_cast<int32_t>(p.q.shape[1]);
    s.seqlen_kv = static_cast<int32_t>(p.k.shape[1]);
  }
  p.block_q = block_or_default(a.block_q, kDefaultBlockQ);
  p.block_kv = block_or_default(a.block_kv, kDefaultBlockKV);
  const TensorRef text = to_tensor_ref(a.text, "text");
  if (text.defined()) check_device(text, "text", Device::kCPU);
  p.text = host_text(text);
  p.step = a.step;
  p.config = to_config(a);
  p.out_now = to_tensor_ref(a.out_now, "out_now");
  p.out_prev = to_tensor_ref(a.out_prev, "out_prev");
  if (p.out_now.defined()) check_device(p.out_now, "out_now", Device::kCPU);
  if (p.out_prev.defined()) check_device(p.out_prev, "out_prev", Device::kCPU);
}

SymbolShape cpu_shape(const CpuPolicy& c) {
  const TensorRef& q = c.params.q;
  FLASHOMNI_CHECK_ARG(q.ndim == 3 || q.ndim == 4, "q",
                      "expected 4 dims [B, N, H, d] (3 with "
                      "cu_seqlens), got ",
                      q.ndim);
  const auto heads = static_cast<int32_t>(q.shape[q.ndim - 2]);
  return symbol_shape_for(c.params.seqlens, heads, c.params.block_q, c.params.block_kv);
}

void check_outputs(const fo_policy_args& a, const SymbolShape& s) {
  FLASHOMNI_CHECK_ARG(a.q_bits != nullptr || s.q_size() == 0, "q_bits", "must not be NULL");
  FLASHOMNI_CHECK_ARG(static_cast<int64_t>(a.q_words) >= s.q_size(), "q_words",
                      "expected at least ", s.q_size(), ", got ", a.q_words);
  FLASHOMNI_CHECK_ARG(a.kv_bits != nullptr || s.kv_size() == 0, "kv_bits", "must not be NULL");
  FLASHOMNI_CHECK_ARG(static_cast<int64_t>(a.kv_words) >= s.kv_size(), "kv_words",
                      "expected at least ", s.kv_size(), ", got ", a.kv_words);
  const int64_t entries = static_cast<int64_t>(s.batch) * s.heads;
  FLASHOMNI_CHECK_ARG(a.densities == nullptr || static_cast<int64_t>(a.densities_count) >= entries,
                      "densities_count", "expected at least ", entries, " (batch * heads), got ",
                      a.densities_count);
}

void run_cpu(const fo_policy_args& a) {
  CpuPolicy c;
  cpu_policy(a, c);
  const SymbolShape shape = cpu_shape(c);
  check_outputs(a, shape);
  const PolicyResult r = run_policy(c.params);
  std::copy(r.symbols.q_bits().begin(), r.symbols.q_bits().end(), a.q_bits);
  std::copy(r.symbols.kv_bits().begin(), r.symbols.kv_bits().end(), a.kv_bits);
  if (a.densities != nullptr) {
    const std::vector<SymbolDensity> d = symbol_densities(r.symbols.ref(), c.params.seqlens);
    std::memcpy(a.densities, d.data(), d.size() * sizeof(SymbolDensity));
  }
}

#ifdef FLASHOMNI_WITH_CUDA
PolicyDeviceParams cuda_policy(const fo_policy_args& a) {
  PolicyDeviceParams p;
  p.q = to_tensor_ref(a.q, "q");
  p.k = to_tensor_ref(a.k, "k");
  p.cu_seqlens_q = to_tensor_ref(a.cu_seqlens_q, "cu_seqlens_q");
  p.cu_seqlens_kv = to_tensor_ref(a.cu_seqlens_kv, "cu_seqlens_kv");
  p.max_seqlen_q = a.max_seqlen_q;
  p.max_seqlen_kv = a.max_seqlen_kv;
  p.block_q = block_or_default(a.block_q, kDefaultBlockQ);
  p.block_kv = block_or_default(a.block_kv, kDefaultBlockKV);
  const TensorRef text = to_tensor_ref(a.text, "text");
  if (text.defined() && text.device == Device::kCPU) {
    p.text = host_text(text);
  } else {
    p.text_ranges = text;
  }
  p.step = a.step;
  p.config = to_config(a);
  p.q_bits = a.q_bits;
  p.kv_bits = a.kv_bits;
  p.densities = reinterpret_cast<SymbolDensity*>(a.densities);
  p.out_now = to_tensor_ref(a.out_now, "out_now");
  p.out_prev = to_tensor_ref(a.out_prev, "out_prev");
  return p;
}
#else
[[noreturn]] void fail_no_cuda(const char* op) {
  fail_unsupported(op, ": CUDA tensors given but libflashomni was built without CUDA");
}
#endif

Device policy_device(const fo_policy_args& a) {
  FLASHOMNI_CHECK_ARG(a.q.data != nullptr, "q", "is required");
  return to_device(a.q.device, "q.device");
}

ForecastParams to_forecast(const fo_forecast_args& a) {
  FLASHOMNI_CHECK_ARG(a.points >= 1 && a.points <= FO_MAX_FORECAST_POINTS, "points",
                      "expected 1 to ", FO_MAX_FORECAST_POINTS, ", got ", a.points);
  ForecastParams p;
  for (int32_t i = 0; i < a.points; ++i) {
    const std::string name = "history[" + std::to_string(i) + "]";
    p.history.push_back(to_tensor_ref(a.history[i], name.c_str()));
    p.steps.push_back(a.steps[i]);
  }
  p.target_step = a.target_step;
  p.order = a.order;
  p.out = to_tensor_ref(a.out, "out");
  check_defined(p.out, "out");
  return p;
}

}  // namespace
}  // namespace flashomni::capi

using namespace flashomni;
using namespace flashomni::capi;

extern "C" {

int flashomni_policy_default_args(fo_policy_args* args) {
  return guarded([&] {
    FLASHOMNI_CHECK_ARG(args != nullptr, "args", "must not be NULL");
    const auto size = static_cast<std::size_t>(args->struct_size);
    FLASHOMNI_CHECK_ARG(
        args->struct_size > 0 && size >= kPolicyArgsV2 && size <= sizeof(fo_policy_args),
        "args.struct_size", "expected sizeof(fo_policy_args) = ", sizeof(fo_policy_args), ", got ",
        args->struct_size);
    fo_policy_args d{};
    d.struct_size = args->struct_size;
    const PolicyConfig c;
    d.num_steps = c.num_steps;
    d.block_q = kDefaultBlockQ;
    d.block_kv = kDefaultBlockKV;
    d.tau_q = c.tau_q;
    d.tau_kv = c.tau_kv;
    d.kv_top_k = c.kv_top_k;
    d.softmax_scale = c.softmax_scale;
    d.cache_queries = c.cache_queries;
    d.skip_kv = c.skip_kv;
    d.keep_diagonal = c.keep_diagonal;
    d.keep_text_kv = c.keep_text_kv;
    d.skip_kv_for_text = c.skip_kv_for_text;
    d.weight_by_tokens = c.weight_by_tokens;
    d.query_score = static_cast<int32_t>(c.query_score);
    std::memcpy(args, &d, size);
  });
}

int flashomni_policy_symbols_shape(const fo_policy_args* args, fo_symbols* shape) {
  return guarded([&] {
    FLASHOMNI_CHECK_ARG(shape != nullptr, "shape", "must not be NULL");
    const auto a = read_args(args, kPolicyArgsV2, "args");
    SymbolShape s;
    const Device device = policy_device(a);
    if (device == Device::kCPU) {
      CpuPolicy c;
      cpu_policy(a, c);
      s = cpu_shape(c);
    } else {
#ifdef FLASHOMNI_WITH_CUDA
      s = cuda::policy_symbol_shape(cuda_policy(a));
#else
      fail_no_cuda("policy_symbols_shape");
#endif
    }
    *shape = fo_symbols{nullptr,   nullptr,    s.batch,
                        s.heads,   s.q_blocks, s.kv_blocks,
                        s.block_q, s.block_kv, static_cast<int32_t>(device)};
  });
}

int flashomni_policy_workspace_size(const fo_policy_args* args, size_t* bytes) {
  return guarded([&] {
    FLASHOMNI_CHECK_ARG(bytes != nullptr, "bytes", "must not be NULL");
    *bytes = 0;
    const auto a = read_args(args, kPolicyArgsV2, "args");
    if (policy_device(a) == Device::kCPU) return;
#ifdef FLASHOMNI_WITH_CUDA
    *bytes = cuda::policy_workspace_size(cuda_policy(a));
#else
    fail_no_cuda("policy_workspace_size");
#endif
  });
}

int flashomni_run_policy(const fo_policy_args* args, void* workspace, size_t workspace_bytes,
                         void* stream) {
  return guarded([&] {
    const auto a = read_args(args, kPolicyArgsV2, "args");
    if (policy_device(a) == Device::kCPU) return run_cpu(a);
#ifdef FLASHOMNI_WITH_CUDA
    const PolicyDeviceParams p = cuda_policy(a);
    check_outputs(a, cuda::policy_symbol_shape(p));
    cuda::run_policy(p, workspace, workspace_bytes, stream);
#else
    (void)workspace, (void)workspace_bytes, (void)stream;
    fail_no_cuda("run_policy");
#endif
  });
}

int flashomni_forecast(const fo_forecast_args* args, void* stream) {
  return guarded([&] {
    const auto a = read_args(args, kForecastArgsV2, "args");
    const ForecastParams p = to_forecast(a);
    if (p.out.device == Device::kCPU) return forecast(p);
#ifdef FLASHOMNI_WITH_CUDA
    cuda::forecast(p, stream);
#else
    (void)stream;
    fail_no_cuda("forecast");
#endif
  });
}

}  // extern "C"
