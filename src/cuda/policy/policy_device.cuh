// FlashOmni CUDA layer (policy): device helpers shared by the policy kernels — a request's token
// geometry (lengths, block counts, text range), fp64 arithmetic that is never contracted into a
// fused multiply-add (the CPU oracle rounds every product and sum), and a shared-memory bitonic
// sort of (value, index) pairs. Internal.
#pragma once

#include <cstdint>

#include "cuda/policy/policy_params.h"

namespace flashomni::cuda::policy {

// Explicitly rounded fp64 operations: nvcc would otherwise fuse a * b + c (one rounding) where
// the host computes two roundings, and decisions are compared bit for bit.
__device__ __forceinline__ double dadd(double a, double b) {
  return __dadd_rn(a, b);
}
__device__ __forceinline__ double dmul(double a, double b) {
  return __dmul_rn(a, b);
}
__device__ __forceinline__ double ddiv(double a, double b) {
  return __ddiv_rn(a, b);
}

__device__ __forceinline__ int32_t overlap(int32_t a0, int32_t a1, int32_t b0, int32_t b1) {
  return max(0, min(a1, b1) - max(a0, b0));
}

// The token geometry of request b (policy.h, describe_request), read from the device seqlens.
struct Request {
  int32_t q_off = 0, k_off = 0, lq = 0, lk = 0, nq = 0, nk = 0, text_begin = 0, text_end = 0;
  int32_t bq = 0, bkv = 0;

  __device__ int32_t q_begin(int32_t i) const { return i * bq; }
  __device__ int32_t q_end(int32_t i) const { return min(lq, (i + 1) * bq); }
  __device__ int32_t k_begin(int32_t j) const { return j * bkv; }
  __device__ int32_t k_end(int32_t j) const { return min(lk, (j + 1) * bkv); }
  __device__ int32_t q_text(int32_t i) const {
    return overlap(q_begin(i), q_end(i), text_begin, text_end);
  }
  __device__ int32_t k_count(int32_t j) const { return k_end(j) - k_begin(j); }
  __device__ int32_t k_text_tokens(int32_t j) const {
    return overlap(k_begin(j), k_end(j), text_begin, text_end);
  }
  // Query blocks holding text: [first_text_block, end_text_block) (empty without text).
  __device__ int32_t first_text_block() const {
    return text_end > text_begin ? text_begin / bq : 0;
  }
  __device__ int32_t end_text_block() const {
    return text_end > text_begin ? (text_end + bq - 1) / bq : 0;
  }
};

__device__ inline Request load_request(const PolicyKernelParams& p, int32_t b) {
  Request r;
  r.bq = p.block_q;
  r.bkv = p.block_kv;
  if (p.q.cu != nullptr) {
    r.q_off = p.q.cu[b];
    r.k_off = p.k.cu[b];
    r.lq = p.q.cu[b + 1] - r.q_off;
    r.lk = p.k.cu[b + 1] - r.k_off;
  } else {
    r.lq = p.q.seqlen;
    r.lk = p.k.seqlen;
  }
  // Trusted device lengths are still clamped to the symbol grid: a bad offset must never make a
  // kernel write outside the caller's words.
  r.lq = min(max(r.lq, 0), p.q_blocks * p.block_q);
  r.lk = min(max(r.lk, 0), p.kv_blocks * p.block_kv);
  r.nq = (r.lq + r.bq - 1) / r.bq;
  r.nk = (r.lk + r.bkv - 1) / r.bkv;
  TextRange t;
  if (p.text_dev != nullptr) {
    const int64_t row = p.text_dev_rows == 1 ? 0 : b;
    t.begin = p.text_dev[row * p.text_dev_stride0];
    t.end = p.text_dev[row * p.text_dev_stride0 + p.text_dev_stride1];
  } else if (p.text_count > 0) {
    t = p.text_host[p.text_count == 1 ? 0 : b];
  }
  r.text_begin = min(max(t.begin, 0), r.lq);
  r.text_end = min(max(t.end, r.text_begin), r.lq);
  return r;
}

// (value, index) ascending, ties by lower index: the order of the oracle's stable sort.
__device__ __forceinline__ bool sorts_before(double va, int32_t ia, double vb, int32_t ib) {
  return va < vb || (va == vb && ia < ib);
}

// Sorts val/idx[0, n) of shared memory ascending by (value, index); n is a power of two (pad
// with +inf and INT32_MAX). Every thread of the block must call it.
__device__ inline void bitonic_sort(double* val, int32_t* idx, int32_t n) {
  for (int32_t k = 2; k <= n; k <<= 1) {
    for (int32_t j = k >> 1; j > 0; j >>= 1) {
      for (int32_t t = threadIdx.x; t < n / 2; t += blockDim.x) {
        const int32_t a = 2 * t - (t & (j - 1));  // t with a 0 inserted at bit log2(j)
        const int32_t c = a + j;
        const bool ascending = (a & k) == 0;
        const double va = val[a], vc = val[c];
        const int32_t ia = idx[a], ic = idx[c];
        if (sorts_before(vc, ic, va, ia) == ascending) {
          val[a] = vc;
          val[c] = va;
          idx[a] = ic;
          idx[c] = ia;
        }
      }
      __syncthreads();
    }
  }
}

// Sum of x[0, n) added in index order from 0.0 by the calling thread alone: the order the CPU
// oracle adds in (its loops and std::accumulate), so the rounded sum, and every threshold decision
// taken on values normalised by it, is bit-equal to the host's. A block-wide tree reduction would
// round differently (e.g. 3 image blocks: (x0 + x1) + x2 vs x0 + (x1 + x2)). The caller writes the
// result to shared memory and synchronises the block before the others normalise by it.
__device__ inline double ordered_sum(const double* x, int32_t n) {
  double sum = 0.0;
  for (int32_t k = 0; k < n; ++k) sum = dadd(sum, x[k]);
  return sum;
}

// Length of the longest prefix of the sorted values whose running sum (in order, as the oracle)
// stays <= threshold. One thread: the sum's rounding depends on the order.
__device__ inline int32_t prefix_within(const double* sorted, int32_t n, double threshold) {
  double cum = 0.0;
  int32_t count = 0;
  for (; count < n; ++count) {
    cum = dadd(cum, sorted[count]);
    if (cum > threshold) break;
  }
  return count;
}

__host__ __device__ constexpr int32_t next_pow2(int32_t n) {
  int32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace flashomni::cuda::policy
