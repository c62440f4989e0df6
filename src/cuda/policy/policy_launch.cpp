// FlashOmni CUDA layer (policy): host launcher of run_policy — checks the arguments (everything
// that can be checked without reading device memory), resolves the step's thresholds and the
// softmax scale on the host, carves the workspace and enqueues the four steps on the stream.
#include <algorithm>
#include <cmath>

#include "cuda/policy/policy_params.h"
#include "cuda/runtime.h"
#include "flashomni/policy_cuda.h"

namespace flashomni::cuda {
namespace {

struct PolicyDims {
  int32_t batch = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int32_t max_q = 0, max_kv = 0;  // longest request (uniform: the length)
  bool varlen = false;
  int32_t change_dim = 0;  // dv of out_now / out_prev when the output-change scores run, else 0
};

void check_cu_seqlens(const TensorRef& t, const char* name) {
  check_device(t, name, Device::kCUDA);
  check_dtype(t, name, {DType::kInt32});
  check_ndim(t, name, {1});
  FLASHOMNI_CHECK_ARG(t.shape[0] >= 2 && (t.stride[0] == 1 || t.shape[0] <= 1), name,
                      "expected a contiguous int32 [B + 1] tensor with B >= 1, got ", t.shape[0],
                      " entries");
}

int32_t check_outputs(const PolicyDeviceParams& p, const PolicyDims& d);

PolicyDims check_policy(const PolicyDeviceParams& p) {
  PolicyDims d;
  for (const auto& [t, name] : {std::pair{&p.q, "q"}, std::pair{&p.k, "k"}}) {
    check_defined(*t, name);
    check_device(*t, name, Device::kCUDA);
    check_dtype(*t, name, {DType::kBFloat16, DType::kFloat16, DType::kFloat32, DType::kFloat64});
    check_last_dim_contiguous(*t, name);
  }
  FLASHOMNI_CHECK_ARG(p.k.dtype == p.q.dtype, "k", "expected dtype ", dtype_name(p.q.dtype),
                      " (same as q), got ", dtype_name(p.k.dtype));
  d.varlen = p.cu_seqlens_q.defined() || p.cu_seqlens_kv.defined();
  check_ndim(p.q, "q", {d.varlen ? 3 : 4});
  check_ndim(p.k, "k", {d.varlen ? 3 : 4});
  const int a = d.varlen ? 0 : 1;  // first per-token axis
  if (d.varlen) {
    check_cu_seqlens(p.cu_seqlens_q, "cu_seqlens_q");
    check_cu_seqlens(p.cu_seqlens_kv, "cu_seqlens_kv");
    FLASHOMNI_CHECK_ARG(p.cu_seqlens_kv.shape[0] == p.cu_seqlens_q.shape[0], "cu_seqlens_kv",
                        "expected ", p.cu_seqlens_q.shape[0], " entries like cu_seqlens_q, got ",
                        p.cu_seqlens_kv.shape[0]);
    FLASHOMNI_CHECK_ARG(p.max_seqlen_q > 0, "max_seqlen_q",
                        "expected the longest query length "
                        "(> 0) with cu_seqlens, got ",
                        p.max_seqlen_q);
    FLASHOMNI_CHECK_ARG(p.max_seqlen_kv > 0, "max_seqlen_kv",
                        "expected the longest key length "
                        "(> 0) with cu_seqlens, got ",
                        p.max_seqlen_kv);
    d.batch = static_cast<int32_t>(p.cu_seqlens_q.shape[0] - 1);
    d.max_q = p.max_seqlen_q;
    d.max_kv = p.max_seqlen_kv;
  } else {
    FLASHOMNI_CHECK_ARG(p.q.shape[0] > 0, "q", "expected batch > 0, got ", p.q.shape[0]);
    FLASHOMNI_CHECK_ARG(p.k.shape[0] == p.q.shape[0], "k", "expected batch ", p.q.shape[0],
                        ", got ", p.k.shape[0]);
    d.batch = static_cast<int32_t>(p.q.shape[0]);
    d.max_q = static_cast<int32_t>(p.q.shape[1]);
    d.max_kv = static_cast<int32_t>(p.k.shape[1]);
  }
  d.heads = static_cast<int32_t>(p.q.shape[a + 1]);
  d.kv_heads = static_cast<int32_t>(p.k.shape[a + 1]);
  d.head_dim = static_cast<int32_t>(p.q.shape[a + 2]);
  FLASHOMNI_CHECK_ARG(d.heads > 0, "q", "expected heads > 0, got ", d.heads);
  FLASHOMNI_CHECK_ARG(d.kv_heads > 0 && d.heads % d.kv_heads == 0, "k",
                      "expected kv heads dividing the ", d.heads, " query heads, got ", d.kv_heads);
  FLASHOMNI_CHECK_ARG(d.head_dim > 0 && p.k.shape[a + 2] == d.head_dim, "k", "expected head_dim ",
                      d.head_dim, " (> 0, same as q), got ", p.k.shape[a + 2]);
  check_policy_config(p.config, p.step);
  if (p.config.cache_queries) {
    // Varlen lengths live on the device: only their maxima can be compared here.
    FLASHOMNI_CHECK_ARG(d.max_q == d.max_kv, d.varlen ? "max_seqlen_kv" : "k",
                        "query caching needs joint attention (seqlen_q == seqlen_kv), got ",
                        d.max_q, " vs ", d.max_kv, " (set config.cache_queries = false)");
  }
  // Text ranges.
  FLASHOMNI_CHECK_ARG(p.text.empty() || !p.text_ranges.defined(), "text_ranges",
                      "give host text or device text_ranges, not both");
  const auto n_text = static_cast<int32_t>(p.text.size());
  FLASHOMNI_CHECK_ARG(n_text <= 1 || n_text == d.batch, "text", "expected 0, 1 or ", d.batch,
                      " ranges, got ", n_text);
  if (n_text > kMaxHostTextRanges) {
    fail_unsupported("run_policy on CUDA: at most ", kMaxHostTextRanges,
                     " host text ranges; pass text_ranges on the device for ", n_text, " requests");
  }
  for (int32_t r = 0; r < n_text; ++r) {
    const TextRange t = p.text[r];
    FLASHOMNI_CHECK_ARG(t.begin >= 0 && t.begin <= t.end && t.end <= d.max_q, "text",
                        "expected 0 <= begin <= end <= ", d.max_q, " for range ", r, ", got [",
                        t.begin, ", ", t.end, ")");
  }
  if (p.text_ranges.defined()) {
    check_device(p.text_ranges, "text_ranges", Device::kCUDA);
    check_dtype(p.text_ranges, "text_ranges", {DType::kInt32});
    check_ndim(p.text_ranges, "text_ranges", {2});
    FLASHOMNI_CHECK_ARG((p.text_ranges.shape[0] == 1 || p.text_ranges.shape[0] == d.batch) &&
                            p.text_ranges.shape[1] == 2,
                        "text_ranges", "expected int32 [1 or ", d.batch, ", 2], got [",
                        p.text_ranges.shape[0], ", ", p.text_ranges.shape[1], "]");
  }
  d.change_dim = check_outputs(p, d);
  return d;
}

// The outputs of QueryScore::kOutputChange; returns dv when both are given (the scores run).
int32_t check_outputs(const PolicyDeviceParams& p, const PolicyDims& d) {
  if (!p.config.cache_queries || p.config.query_score != QueryScore::kOutputChange) return 0;
  FLASHOMNI_CHECK_ARG(p.out_now.defined(), "out_now",
                      "expected this update's attention output [B, N, H, dv] with "
                      "config.query_score = kOutputChange");
  const int a = d.varlen ? 0 : 1;
  for (const auto& [t, name] :
       {std::pair{&p.out_now, "out_now"}, std::pair{&p.out_prev, "out_prev"}}) {
    if (!t->defined()) continue;
    check_device(*t, name, Device::kCUDA);
    check_dtype(*t, name, {DType::kBFloat16, DType::kFloat16, DType::kFloat32, DType::kFloat64});
    check_last_dim_contiguous(*t, name);
    check_ndim(*t, name, {d.varlen ? 3 : 4});
    if (!d.varlen) {
      FLASHOMNI_CHECK_ARG(t->shape[0] == d.batch && t->shape[1] == d.max_q, name, "expected [",
                          d.batch, ", ", d.max_q, ", ..] like q, got [", t->shape[0], ", ",
                          t->shape[1], ", ..]");
    }
    FLASHOMNI_CHECK_ARG(t->shape[a + 1] == d.heads && t->shape[a + 2] == p.out_now.shape[a + 2] &&
                            t->shape[a + 2] > 0,
                        name, "expected ", d.heads, " heads like q and dv ", p.out_now.shape[a + 2],
                        " like out_now, got ", t->shape[a + 1], " and ", t->shape[a + 2]);
  }
  return p.out_prev.defined() ? static_cast<int32_t>(p.out_now.shape[a + 2]) : 0;
}

policy::OutputSide output_side(const TensorRef& t, bool varlen) {
  policy::OutputSide s;
  s.data = t.data;
  s.dtype = t.dtype;
  const int a = varlen ? 0 : 1;
  s.stride_batch = varlen ? 0 : t.stride[0];
  s.stride_token = t.stride[a];
  s.stride_head = t.stride[a + 1];
  return s;
}

SymbolShape shape_of(const PolicyDims& d, const PolicyDeviceParams& p) {
  SeqLens longest;
  longest.batch = d.batch;
  longest.seqlen_q = d.max_q;
  longest.seqlen_kv = d.max_kv;
  return symbol_shape_for(longest, d.heads, p.block_q, p.block_kv);  // validates block sizes
}

policy::PoolSide pool_side(const TensorRef& t, const PolicyDims& d, int32_t heads, int32_t blocks,
                           int32_t block, int32_t seqlen, const TensorRef& cu) {
  policy::PoolSide s;
  s.data = t.data;
  const int a = d.varlen ? 0 : 1;
  s.stride_batch = d.varlen ? 0 : t.stride[0];
  s.stride_token = t.stride[a];
  s.stride_head = t.stride[a + 1];
  s.heads = heads;
  s.blocks = blocks;
  s.block = block;
  s.seqlen = seqlen;
  s.cu = d.varlen ? static_cast<const int32_t*>(cu.data) : nullptr;
  // 16-byte vector loads need aligned data and strides in whole vectors.
  const int64_t vec = static_cast<int64_t>(16 / dtype_size(t.dtype));
  const bool aligned = reinterpret_cast<uintptr_t>(t.data) % 16 == 0 && d.head_dim % vec == 0 &&
                       s.stride_batch % vec == 0 && s.stride_token % vec == 0 &&
                       s.stride_head % vec == 0;
  s.vector = aligned ? static_cast<int32_t>(vec) : 1;
  return s;
}

std::size_t align256(std::size_t n) {
  return (n + 255) / 256 * 256;
}

}  // namespace

namespace policy {

WorkspaceLayout workspace_layout(int32_t batch, int32_t heads, int32_t kv_heads, int32_t head_dim,
                                 int32_t q_blocks, int32_t kv_blocks, int32_t change_dim) {
  const auto rows = static_cast<std::size_t>(batch) * heads * q_blocks;
  WorkspaceLayout w;
  std::size_t at = 0;
  auto take = [&at](std::size_t bytes) {
    const std::size_t start = at;
    at += align256(bytes);
    return start;
  };
  w.q_mean = take(rows * head_dim * sizeof(double));
  w.k_mean =
      take(static_cast<std::size_t>(batch) * kv_heads * kv_blocks * head_dim * sizeof(double));
  w.logits = take(rows * kv_blocks * sizeof(double));
  w.i2t = take(rows * sizeof(double));
  w.kept = take(rows * sizeof(int32_t));
  w.kept_tokens = take(rows * sizeof(int64_t));
  w.change_parts = take(rows * change_dim * 2 * sizeof(double));
  w.change = take(change_dim > 0 ? rows * sizeof(double) : 0);
  w.total = at;
  return w;
}

}  // namespace policy

SymbolShape policy_symbol_shape(const PolicyDeviceParams& p) {
  return shape_of(check_policy(p), p);
}

std::size_t policy_workspace_size(const PolicyDeviceParams& p) {
  const PolicyDims d = check_policy(p);
  const SymbolShape s = shape_of(d, p);
  return policy::workspace_layout(d.batch, d.heads, d.kv_heads, d.head_dim, s.q_blocks, s.kv_blocks,
                                  d.change_dim)
      .total;
}

void run_policy(const PolicyDeviceParams& p, void* workspace, std::size_t workspace_bytes,
                void* stream) {
  const PolicyDims d = check_policy(p);
  const SymbolShape s = shape_of(d, p);
  if (s.q_blocks > kMaxPolicyBlocks || s.kv_blocks > kMaxPolicyBlocks) {
    fail_unsupported("run_policy on CUDA: at most ", kMaxPolicyBlocks,
                     " query / key blocks (sorted in shared memory), got ", s.q_blocks, " x ",
                     s.kv_blocks);
  }
  if (static_cast<int64_t>(d.batch) * d.heads > 65535) {
    fail_unsupported("run_policy on CUDA: batch * heads must be <= 65535, got ",
                     static_cast<int64_t>(d.batch) * d.heads);
  }
  FLASHOMNI_CHECK_ARG(p.q_bits != nullptr || s.q_size() == 0, "q_bits", "expected ", s.q_size(),
                      " device words, got a null pointer");
  FLASHOMNI_CHECK_ARG(p.kv_bits != nullptr || s.kv_size() == 0, "kv_bits", "expected ", s.kv_size(),
                      " device words, got a null pointer");
  const policy::WorkspaceLayout w = policy::workspace_layout(
      d.batch, d.heads, d.kv_heads, d.head_dim, s.q_blocks, s.kv_blocks, d.change_dim);
  FLASHOMNI_CHECK_ARG(workspace_bytes >= w.total, "workspace_bytes", "expected at least ", w.total,
                      " (policy_workspace_size), got ", workspace_bytes);
  FLASHOMNI_CHECK_ARG(workspace != nullptr || w.total == 0, "workspace",
                      "expected a device buffer of ", w.total, " bytes, got a null pointer");
  FLASHOMNI_CHECK_ARG(reinterpret_cast<uintptr_t>(workspace) % 256 == 0, "workspace",
                      "expected a 256-byte aligned device buffer");

  policy::PolicyKernelParams k;
  k.dtype = p.q.dtype;
  k.batch = d.batch;
  k.heads = d.heads;
  k.kv_heads = d.kv_heads;
  k.head_dim = d.head_dim;
  k.q_blocks = s.q_blocks;
  k.kv_blocks = s.kv_blocks;
  k.block_q = p.block_q;
  k.block_kv = p.block_kv;
  auto* base = static_cast<unsigned char*>(workspace);
  k.q = pool_side(p.q, d, d.heads, s.q_blocks, p.block_q, d.max_q, p.cu_seqlens_q);
  k.k = pool_side(p.k, d, d.kv_heads, s.kv_blocks, p.block_kv, d.max_kv, p.cu_seqlens_kv);
  k.q.mean = reinterpret_cast<double*>(base + w.q_mean);
  k.k.mean = reinterpret_cast<double*>(base + w.k_mean);
  k.logits = reinterpret_cast<double*>(base + w.logits);
  k.i2t = reinterpret_cast<double*>(base + w.i2t);
  k.kept = reinterpret_cast<int32_t*>(base + w.kept);
  k.kept_tokens = reinterpret_cast<int64_t*>(base + w.kept_tokens);

  k.text_count = static_cast<int32_t>(p.text.size());
  std::copy(p.text.begin(), p.text.end(), k.text_host);
  if (p.text_ranges.defined()) {
    k.text_dev = static_cast<const int32_t*>(p.text_ranges.data);
    k.text_dev_rows = static_cast<int32_t>(p.text_ranges.shape[0]);
    k.text_dev_stride0 = p.text_ranges.stride[0];
    k.text_dev_stride1 = p.text_ranges.stride[1];
  }

  // Host arithmetic exactly as the oracle's (choose_symbols / pooled_logits).
  const PolicyConfig& c = p.config;
  const double phi = policy_phi(p.step, c.num_steps);
  k.kv_threshold = c.tau_kv * phi;
  k.q_threshold = c.tau_q * phi;
  const double scale = c.softmax_scale;
  k.scale = scale > 0.0 ? scale : 1.0 / std::sqrt(static_cast<double>(d.head_dim));
  const int32_t last = d.max_kv - (s.kv_blocks - 1) * p.block_kv;
  k.uniform_last_log_weight =
      s.kv_blocks > 0 ? std::log(static_cast<double>(last) / p.block_kv) : 0.0;
  k.kv_top_k = c.kv_top_k;
  k.cache_queries = c.cache_queries;
  k.skip_kv = c.skip_kv;
  k.keep_diagonal = c.keep_diagonal;
  k.keep_text_kv = c.keep_text_kv;
  k.skip_kv_for_text = c.skip_kv_for_text;
  k.weight_by_tokens = c.weight_by_tokens;
  k.q_bits = p.q_bits;
  k.kv_bits = p.kv_bits;
  k.densities = p.densities;

  k.by_change = c.cache_queries && c.query_score == QueryScore::kOutputChange;
  const auto st = static_cast<cudaStream_t>(stream);
  if (d.change_dim > 0) {
    policy::ChangeKernelParams ch;
    ch.now = output_side(p.out_now, d.varlen);
    ch.prev = output_side(p.out_prev, d.varlen);
    ch.batch = d.batch;
    ch.heads = d.heads;
    ch.dim = d.change_dim;
    ch.blocks = s.q_blocks;
    ch.block = p.block_q;
    ch.seqlen = d.max_q;
    ch.cu = d.varlen ? static_cast<const int32_t*>(p.cu_seqlens_q.data) : nullptr;
    ch.parts = reinterpret_cast<double*>(base + w.change_parts);
    ch.change = reinterpret_cast<double*>(base + w.change);
    k.change = ch.change;
    policy::launch_output_change(ch, st);
  }
  policy::launch_pool_and_logits(k, st);
  policy::launch_choose(k, st);
}

}  // namespace flashomni::cuda
