// FlashOmni core: check_attention, the argument validator both attention backends run first.
// Decisions (documented in attention.h):
//  - q.ndim selects the mode: 4 = uniform batch, 3 = varlen (cu_seqlens_q/kv then required).
//  - varlen max_seqlen_q/kv must equal the longest request: the symbol grid is sized from it
//    (q_blocks = ceil(max_seqlen_q / block_q)), and the CPU and CUDA backends must agree on that
//    grid. The CPU check reads cu_seqlens and enforces equality; CUDA cannot read them without a
//    host sync, so it checks shapes only and trusts the caller.
//  - cu_seqlens start at 0 (as validate_seqlens requires), are non-decreasing and stay inside the
//    tensors.
#include <algorithm>
#include <cmath>

#include "core/check_layout.h"
#include "flashomni/attention.h"

namespace flashomni {
namespace {

using detail::check_layout;
using detail::check_same_dtype;
using detail::check_shape;
using detail::kMaxInt32;

void check_cu_seqlens(const TensorRef& cu, const char* name, Device device, int64_t batch) {
  check_defined(cu, name);
  check_dtype(cu, name, {DType::kInt32});
  check_ndim(cu, name, {1});
  check_layout(cu, name, device, /*tma_aligned=*/false);
  FLASHOMNI_CHECK_ARG(batch < 0 || cu.shape[0] == batch + 1, name, "expected shape [B + 1] = [",
                      batch + 1, "] (same batch as cu_seqlens_q), got ", detail::shape_str(cu));
  FLASHOMNI_CHECK_ARG(cu.shape[0] >= 2, name, "expected shape [B + 1] with B >= 1, got ",
                      detail::shape_str(cu));
}

// CPU only: the offsets are host memory we may read.
int32_t check_cu_values(const TensorRef& cu, const char* name, int64_t total, int32_t max_seqlen,
                        const char* max_name) {
  const int32_t* o = cu.ptr<const int32_t>();
  const int64_t batch = cu.shape[0] - 1;
  FLASHOMNI_CHECK_ARG(o[0] == 0, name, "expected the first offset to be 0, got ", o[0]);
  int32_t longest = 0;
  for (int64_t b = 0; b < batch; ++b) {
    FLASHOMNI_CHECK_ARG(o[b + 1] >= o[b], name, "offsets must be non-decreasing, got ", name, "[",
                        b, "] = ", o[b], " > ", name, "[", b + 1, "] = ", o[b + 1]);
    longest = std::max(longest, o[b + 1] - o[b]);
  }
  FLASHOMNI_CHECK_ARG(o[batch] <= total, name, "last offset ", o[batch],
                      " exceeds the packed token count ", total);
  FLASHOMNI_CHECK_ARG(max_seqlen == longest, max_name, "must equal the longest request, ", longest,
                      " tokens per ", name, ", got ", max_seqlen);
  return longest;
}

}  // namespace

AttentionProblem check_attention(const AttentionParams& p, Device device) {
  AttentionProblem prob;
  check_defined(p.q, "q");
  check_defined(p.k, "k");
  check_defined(p.v, "v");
  check_defined(p.out, "out");
  detail::check_storage_dtype(p.q, "q", device);
  check_same_dtype(p.k, "k", p.q.dtype, "q");
  check_same_dtype(p.v, "v", p.q.dtype, "q");
  check_same_dtype(p.out, "out", p.q.dtype, "q");
  check_ndim(p.q, "q", {3, 4});
  prob.varlen = p.q.ndim == 3;
  const int nd = p.q.ndim;
  check_ndim(p.k, "k", {nd});
  check_ndim(p.v, "v", {nd});
  check_layout(p.q, "q", device);
  check_layout(p.k, "k", device);
  check_layout(p.v, "v", device);
  check_layout(p.out, "out", device);

  const int64_t heads = p.q.shape[nd - 2], head_dim = p.q.shape[nd - 1];
  const int64_t kv_heads = p.k.shape[nd - 2];
  FLASHOMNI_CHECK_ARG(heads >= 1 && heads <= kMaxInt32, "q", "need at least one head, got shape ",
                      detail::shape_str(p.q));
  FLASHOMNI_CHECK_ARG(head_dim >= 1 && head_dim <= kMaxInt32, "q", "need head_dim >= 1, got shape ",
                      detail::shape_str(p.q));
  if (device == Device::kCUDA) {
    FLASHOMNI_CHECK_ARG(head_dim == 64 || head_dim == 128 || head_dim == 256, "q",
                        "CUDA kernels support head_dim 64, 128 or 256, got ", head_dim);
  }
  FLASHOMNI_CHECK_ARG(kv_heads >= 1 && heads % kv_heads == 0, "k", "kv heads (dim ", nd - 2,
                      ") must divide the query heads ", heads, ", got ", kv_heads);
  FLASHOMNI_CHECK_ARG(p.k.shape[nd - 1] == head_dim, "k", "head_dim (last dim) must equal q's ",
                      head_dim, ", got ", p.k.shape[nd - 1]);
  for (int i = 0; i < nd; ++i) {
    FLASHOMNI_CHECK_ARG(p.v.shape[i] == p.k.shape[i], "v", "expected the shape of k ",
                        detail::shape_str(p.k), ", got ", detail::shape_str(p.v));
    FLASHOMNI_CHECK_ARG(p.out.ndim == nd && p.out.shape[i] == p.q.shape[i], "out",
                        "expected the shape of q ", detail::shape_str(p.q), ", got ",
                        detail::shape_str(p.out));
  }

  int64_t batch = 0, seq_q = 0, seq_kv = 0;
  if (!prob.varlen) {
    batch = p.q.shape[0];
    seq_q = p.q.shape[1];
    seq_kv = p.k.shape[1];
    FLASHOMNI_CHECK_ARG(batch >= 1 && batch <= kMaxInt32, "q", "need batch >= 1, got shape ",
                        detail::shape_str(p.q));
    FLASHOMNI_CHECK_ARG(p.k.shape[0] == batch, "k", "batch (dim 0) must equal q's ", batch,
                        ", got ", p.k.shape[0]);
    FLASHOMNI_CHECK_ARG(seq_q <= kMaxInt32, "q", "sequence too long: ", seq_q);
    FLASHOMNI_CHECK_ARG(seq_kv <= kMaxInt32, "k", "sequence too long: ", seq_kv);
    FLASHOMNI_CHECK_ARG(!p.cu_seqlens_q.defined(), "cu_seqlens_q",
                        "must not be given with a 4-D (uniform batch) q");
    FLASHOMNI_CHECK_ARG(!p.cu_seqlens_kv.defined(), "cu_seqlens_kv",
                        "must not be given with a 4-D (uniform batch) q");
  } else {
    check_cu_seqlens(p.cu_seqlens_q, "cu_seqlens_q", device, -1);
    batch = p.cu_seqlens_q.shape[0] - 1;
    check_cu_seqlens(p.cu_seqlens_kv, "cu_seqlens_kv", device, batch);
    FLASHOMNI_CHECK_ARG(batch <= kMaxInt32, "cu_seqlens_q", "batch too large: ", batch);
    FLASHOMNI_CHECK_ARG(p.q.shape[0] <= kMaxInt32, "q", "too many tokens: ", p.q.shape[0]);
    FLASHOMNI_CHECK_ARG(p.k.shape[0] <= kMaxInt32, "k", "too many tokens: ", p.k.shape[0]);
    FLASHOMNI_CHECK_ARG(p.max_seqlen_q >= 0 && p.max_seqlen_q <= p.q.shape[0], "max_seqlen_q",
                        "must lie in [0, total_q = ", p.q.shape[0], "], got ", p.max_seqlen_q);
    FLASHOMNI_CHECK_ARG(p.max_seqlen_kv >= 0 && p.max_seqlen_kv <= p.k.shape[0], "max_seqlen_kv",
                        "must lie in [0, total_kv = ", p.k.shape[0], "], got ", p.max_seqlen_kv);
    if (device == Device::kCPU) {
      check_cu_values(p.cu_seqlens_q, "cu_seqlens_q", p.q.shape[0], p.max_seqlen_q, "max_seqlen_q");
      check_cu_values(p.cu_seqlens_kv, "cu_seqlens_kv", p.k.shape[0], p.max_seqlen_kv,
                      "max_seqlen_kv");
    }
    seq_q = p.max_seqlen_q;
    seq_kv = p.max_seqlen_kv;
  }

  if (p.lse.defined()) {
    check_dtype(p.lse, "lse", {DType::kFloat32});
    if (prob.varlen) {
      check_shape(p.lse, "lse", {heads, p.q.shape[0]}, "[H, total_q]");
    } else {
      check_shape(p.lse, "lse", {batch, heads, seq_q}, "[B, H, Nq]");
    }
    check_layout(p.lse, "lse", device, /*tma_aligned=*/false);
  }

  FLASHOMNI_CHECK_ARG(std::isfinite(p.softmax_scale) && p.softmax_scale >= 0.0f, "softmax_scale",
                      "must be finite and >= 0 (0 means 1/sqrt(head_dim)), got ", p.softmax_scale);

  prob.batch = static_cast<int32_t>(batch);
  prob.heads = static_cast<int32_t>(heads);
  prob.kv_heads = static_cast<int32_t>(kv_heads);
  prob.head_dim = static_cast<int32_t>(head_dim);
  prob.max_seqlen_q = static_cast<int32_t>(seq_q);
  prob.max_seqlen_kv = static_cast<int32_t>(seq_kv);
  prob.softmax_scale = p.softmax_scale > 0.0f
                           ? p.softmax_scale
                           : static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));

  if (p.symbols != nullptr) {
    const SymbolsRef& s = *p.symbols;
    FLASHOMNI_CHECK_ARG(s.device == device, "symbols.device", "expected ",
                        device == Device::kCPU ? "CPU" : "CUDA", " symbols, got ",
                        s.device == Device::kCPU ? "CPU" : "CUDA");
    SeqLens lens;
    lens.batch = prob.batch;
    lens.seqlen_q = prob.max_seqlen_q;
    lens.seqlen_kv = prob.max_seqlen_kv;
    if (device == Device::kCPU) {
      if (prob.varlen) {
        lens.cu_seqlens_q = p.cu_seqlens_q.ptr<const int32_t>();
        lens.cu_seqlens_kv = p.cu_seqlens_kv.ptr<const int32_t>();
      }
      validate_symbols(s, lens, prob.heads);
    } else {
      validate_symbol_shape(s, lens, prob.heads);
    }
  }
  return prob;
}

}  // namespace flashomni
