// FlashOmni CUDA layer (policy), steps 1-2: block means of Q and K (one pass over each, the
// bandwidth-bound part: 2 * 16896 * 24 * 128 bf16 = 208 MB at N = 16896) and the pooled logits
// P = scale * qbar kbar^T per (b, h), a small fp64 GEMM (nQ x nK x d).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "cuda/policy/policy_device.cuh"
#include "cuda/runtime.h"

namespace flashomni::cuda::policy {
namespace {

template <typename T>
__device__ __forceinline__ double to_double(T x);
template <>
__device__ __forceinline__ double to_double<__nv_bfloat16>(__nv_bfloat16 x) {
  return static_cast<double>(__bfloat162float(x));
}
template <>
__device__ __forceinline__ double to_double<__half>(__half x) {
  return static_cast<double>(__half2float(x));
}
template <>
__device__ __forceinline__ double to_double<float>(float x) {
  return static_cast<double>(x);
}
template <>
__device__ __forceinline__ double to_double<double>(double x) {
  return x;
}

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

// Tokens loaded ahead per thread: 16 independent 16-byte loads, so a thread's 128 tokens take
// 8 dependent rounds to DRAM (16 with 8).
constexpr int kUnroll = 16;

// One CTA per (block, request, chunk of `heads_per_cta` heads), ~4 CTAs per SM. At FLUX's 4608
// tokens (36 blocks) a CTA per (block, request) used 36 SMs; chunks and 16 loads per round took
// a pass over 28 MB from 36.5 to 32.3 us (bench/policy_kernels.py, bench/results/
// policy_kernels_h100_5877ee6), far less than the 3-4x that 3.7x more SMs predicted: the pass
// is bound by the threads' issue latency, not by memory (launch_pool_typed picks narrower
// vectors for more threads). Thread g owns V consecutive columns of one head and sums its
// block's tokens in token order (the oracle's order: bit-identical means for every dtype).
template <typename T, int V>
__global__ void pool_kernel(PoolSide s, int32_t head_dim, int32_t heads_per_cta) {
  const int32_t blk = blockIdx.x, b = blockIdx.y;
  int32_t len = s.seqlen, off = 0;
  if (s.cu != nullptr) {
    off = s.cu[b];
    len = s.cu[b + 1] - off;
  }
  len = min(max(len, 0), s.blocks * s.block);
  const int32_t t0 = blk * s.block, t1 = min(len, t0 + s.block);
  const int32_t groups_per_head = head_dim / V;
  const int32_t first_head = static_cast<int32_t>(blockIdx.z) * heads_per_cta;
  const int32_t groups = min(heads_per_cta, s.heads - first_head) * groups_per_head;
  const T* base =
      static_cast<const T*>(s.data) + (s.cu != nullptr ? static_cast<int64_t>(off) * s.stride_token
                                                       : static_cast<int64_t>(b) * s.stride_batch);
  for (int32_t g = threadIdx.x; g < groups; g += blockDim.x) {
    const int32_t h = first_head + g / groups_per_head, c0 = (g % groups_per_head) * V;
    double* out =
        s.mean + ((static_cast<int64_t>(b) * s.heads + h) * s.blocks + blk) * head_dim + c0;
    double acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = 0.0;
    const T* col = base + static_cast<int64_t>(h) * s.stride_head + c0;
    int32_t t = t0;
    for (; t + kUnroll <= t1; t += kUnroll) {
      Vec<T, V> x[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        x[u] =
            *reinterpret_cast<const Vec<T, V>*>(col + static_cast<int64_t>(t + u) * s.stride_token);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] = dadd(acc[v], to_double(x[u].v[v]));
      }
    }
    for (; t < t1; ++t) {
      const Vec<T, V> x =
          *reinterpret_cast<const Vec<T, V>*>(col + static_cast<int64_t>(t) * s.stride_token);
#pragma unroll
      for (int v = 0; v < V; ++v) acc[v] = dadd(acc[v], to_double(x.v[v]));
    }
    // The oracle leaves 0 past a request's end; the count divides as a double, as on the host.
    const double n = static_cast<double>(t1 - t0);
#pragma unroll
    for (int v = 0; v < V; ++v) out[v] = t1 > t0 ? ddiv(acc[v], n) : 0.0;
  }
}

// Pooled logits: 64 x 64 output tile per CTA, 256 threads with 4 x 4 outputs each at stride 16
// (conflict-free shared reads), d in chunks of 16. Every output sums its products in ascending
// c with separate roundings, as pooled_logits on the host. At N = 33792, H = 24: 214 M products,
// ~30 us of fp64 issue on an H100.
constexpr int kTile = 64, kChunk = 16, kLogitThreads = 256;

__global__ void __launch_bounds__(kLogitThreads) logits_kernel(PolicyKernelParams p) {
  __shared__ double qs[kChunk][kTile];
  __shared__ double ks[kChunk][kTile];
  const int32_t bh = blockIdx.z, b = bh / p.heads, h = bh % p.heads;
  const int32_t hk = h / (p.heads / p.kv_heads);
  const int32_t i0 = blockIdx.y * kTile, j0 = blockIdx.x * kTile;
  const Request r = load_request(p, b);
  if (i0 >= r.nq || j0 >= r.nk) return;  // no valid entry: the row kernel reads none
  const int32_t d = p.head_dim;
  const double* qm = p.q.mean + (static_cast<int64_t>(b) * p.heads + h) * p.q_blocks * d;
  const double* km = p.k.mean + (static_cast<int64_t>(b) * p.kv_heads + hk) * p.kv_blocks * d;
  const int32_t tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  double acc[4][4];
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[a][c] = 0.0;
  for (int32_t c0 = 0; c0 < d; c0 += kChunk) {
    const int32_t width = min(kChunk, d - c0);
    for (int32_t e = threadIdx.x; e < kTile * kChunk; e += kLogitThreads) {
      const int32_t row = e / kChunk, col = e % kChunk;
      const bool in_c = col < width;
      qs[col][row] =
          in_c && i0 + row < r.nq ? qm[static_cast<int64_t>(i0 + row) * d + c0 + col] : 0.0;
      ks[col][row] =
          in_c && j0 + row < r.nk ? km[static_cast<int64_t>(j0 + row) * d + c0 + col] : 0.0;
    }
    __syncthreads();
    for (int32_t c = 0; c < width; ++c) {
      double qv[4], kv[4];
#pragma unroll
      for (int a = 0; a < 4; ++a) qv[a] = qs[c][ty + 16 * a];
#pragma unroll
      for (int a = 0; a < 4; ++a) kv[a] = ks[c][tx + 16 * a];
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[a][e] = dadd(acc[a][e], dmul(qv[a], kv[e]));
    }
    __syncthreads();
  }
  double* out = p.logits + (static_cast<int64_t>(b) * p.heads + h) * p.q_blocks * p.kv_blocks;
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int32_t i = i0 + ty + 16 * a;
    if (i >= r.nq) continue;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int32_t j = j0 + tx + 16 * e;
      if (j < r.nk) out[static_cast<int64_t>(i) * p.kv_blocks + j] = dmul(acc[a][e], p.scale);
    }
  }
}

template <typename T>
void launch_pool_typed(const PoolSide& s, int32_t head_dim, int32_t batch, cudaStream_t stream) {
  constexpr int kVec = static_cast<int>(16 / sizeof(T));
  constexpr int kNarrow = sizeof(T) < 4 ? static_cast<int>(4 / sizeof(T)) : 1;
  // Per element a thread converts to fp64 and adds in a dependent chain, ~4 instructions
  // issued at one warp per scheduler when 16-byte vectors leave few threads: ncu at 4608 tokens
  // (bench/results/policy_kernels_h100_5877ee6/ncu_pool_4608.txt): 3.25 warps per SM, 91 % of
  // cycles with no eligible warp, DRAM 25 % busy. Below 16 warps per SM, 4-byte vectors give 4x
  // (16-bit types) the threads: 32.1 -> 13.6 us per pass at 4608 tokens, 48.5 -> 39.9 us at 16896
  // (10 us predicted at 4608; policy_kernels_h100_4109a45). The per-column token order, hence the
  // bits, stay the same.
  const int64_t sms = sm_count();
  const int64_t row_ctas = static_cast<int64_t>(s.blocks) * batch;
  int32_t v = s.vector == kVec ? kVec : 1;
  if (v == kVec && row_ctas * s.heads * (head_dim / kVec) < 16 * 32 * sms) v = kNarrow;
  // Heads per CTA: enough CTAs for ~4 per SM (at most one head each), at least a warp of
  // columns per CTA (one head of 128 bf16 is 16 threads: two heads then).
  const int64_t want_chunks = (4 * sms + row_ctas - 1) / row_ctas;
  const int32_t groups_per_head = head_dim / v;
  const int32_t min_heads = std::max(1, (32 + groups_per_head - 1) / groups_per_head);
  int32_t heads_per_cta =
      static_cast<int32_t>(std::max<int64_t>(1, (s.heads + want_chunks - 1) / want_chunks));
  heads_per_cta = std::min(s.heads, std::max(heads_per_cta, min_heads));
  const int32_t chunks = (s.heads + heads_per_cta - 1) / heads_per_cta;
  const int32_t groups = heads_per_cta * groups_per_head;
  const int32_t threads = std::min(1024, (groups + 31) / 32 * 32);
  const dim3 grid(s.blocks, batch, chunks);
  if (v == kVec) {
    pool_kernel<T, kVec><<<grid, threads, 0, stream>>>(s, head_dim, heads_per_cta);
  } else if (v == kNarrow) {
    pool_kernel<T, kNarrow><<<grid, threads, 0, stream>>>(s, head_dim, heads_per_cta);
  } else {
    pool_kernel<T, 1><<<grid, threads, 0, stream>>>(s, head_dim, heads_per_cta);
  }
  FLASHOMNI_CUDA_CHECK(cudaGetLastError());
}

void launch_pool(const PoolSide& s, DType dtype, int32_t head_dim, int32_t batch,
                 cudaStream_t stream) {
  if (s.blocks == 0) return;
  switch (dtype) {
    case DType::kBFloat16:
      return launch_pool_typed<__nv_bfloat16>(s, head_dim, batch, stream);
    case DType::kFloat16:
      return launch_pool_typed<__half>(s, head_dim, batch, stream);
    case DType::kFloat32:
      return launch_pool_typed<float>(s, head_dim, batch, stream);
    case DType::kFloat64:
      return launch_pool_typed<double>(s, head_dim, batch, stream);
    default:
      fail_unsupported("run_policy on CUDA: dtype ", dtype_name(dtype));
  }
}

}  // namespace

void launch_pool_and_logits(const PolicyKernelParams& p, cudaStream_t stream) {
  launch_pool(p.q, p.dtype, p.head_dim, p.batch, stream);
  launch_pool(p.k, p.dtype, p.head_dim, p.batch, stream);
  if (p.q_blocks == 0 || p.kv_blocks == 0) return;
  const dim3 grid((p.kv_blocks + kTile - 1) / kTile, (p.q_blocks + kTile - 1) / kTile,
                  p.batch * p.heads);
  logits_kernel<<<grid, kLogitThreads, 0, stream>>>(p);
  FLASHOMNI_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashomni::cuda::policy
