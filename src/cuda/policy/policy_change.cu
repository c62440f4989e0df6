// FlashOmni CUDA layer (policy): the output-change query scores (QueryScore::kOutputChange) —
// per (b, h, query block) ||O_now - O_prev|| / (||O_prev|| + eps) over the block's tokens, in the
// order of output_change_scores (policy.h): per head-dim column over tokens ascending, then over
// columns ascending, every operation rounded separately in fp64, so the bits equal the oracle's.
// Bandwidth-bound: one coalesced pass over both outputs (2 * 16896 * 24 * 128 bf16 = 208 MB).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/policy/policy_device.cuh"
#include "cuda/runtime.h"

namespace flashomni::cuda::policy {
namespace {

// Each output may have its own storage dtype; the switch is uniform across the CTA.
__device__ __forceinline__ double load(const OutputSide& s, int64_t i) {
  switch (s.dtype) {
    case DType::kBFloat16:
      return static_cast<double>(__bfloat162float(static_cast<const __nv_bfloat16*>(s.data)[i]));
    case DType::kFloat16:
      return static_cast<double>(__half2float(static_cast<const __half*>(s.data)[i]));
    case DType::kFloat32:
      return static_cast<double>(static_cast<const float*>(s.data)[i]);
    default:
      return static_cast<const double*>(s.data)[i];
  }
}

__device__ __forceinline__ int64_t offset(const OutputSide& s, bool varlen, int32_t b, int32_t off,
                                          int32_t t, int32_t h) {
  return varlen ? static_cast<int64_t>(off + t) * s.stride_token + h * s.stride_head
                : b * s.stride_batch + static_cast<int64_t>(t) * s.stride_token + h * s.stride_head;
}

// One CTA per (query block, request); thread g sums column (h, c) over the block's tokens, then
// one thread per head sums its columns in order.
__global__ void change_kernel(ChangeKernelParams p) {
  const int32_t blk = blockIdx.x, b = blockIdx.y;
  const bool varlen = p.cu != nullptr;
  int32_t len = p.seqlen, off = 0;
  if (varlen) {
    off = p.cu[b];
    len = p.cu[b + 1] - off;
  }
  len = min(max(len, 0), p.blocks * p.block);
  const int32_t t0 = blk * p.block, t1 = min(len, t0 + p.block);
  const int32_t columns = p.heads * p.dim;
  for (int32_t g = threadIdx.x; g < columns; g += blockDim.x) {
    const int32_t h = g / p.dim, c = g % p.dim;
    double n = 0.0, s = 0.0;
    for (int32_t t = t0; t < t1; ++t) {
      const double prev = load(p.prev, offset(p.prev, varlen, b, off, t, h) + c);
      const double now = load(p.now, offset(p.now, varlen, b, off, t, h) + c);
      const double diff = dadd(now, -prev);  // now - prev, one rounding as on the host
      n = dadd(n, dmul(diff, diff));
      s = dadd(s, dmul(prev, prev));
    }
    double* part =
        p.parts + (((static_cast<int64_t>(b) * p.heads + h) * p.blocks + blk) * p.dim + c) * 2;
    part[0] = n;
    part[1] = s;
  }
  __syncthreads();
  for (int32_t h = threadIdx.x; h < p.heads; h += blockDim.x) {
    const int64_t row = (static_cast<int64_t>(b) * p.heads + h) * p.blocks + blk;
    const double* part = p.parts + row * p.dim * 2;
    double num = 0.0, den = 0.0;
    for (int32_t c = 0; c < p.dim; ++c) {
      num = dadd(num, part[2 * c]);
      den = dadd(den, part[2 * c + 1]);
    }
    p.change[row] = ddiv(__dsqrt_rn(num), dadd(__dsqrt_rn(den), kOutputChangeEps));
  }
}

}  // namespace

void launch_output_change(const ChangeKernelParams& p, cudaStream_t stream) {
  if (p.blocks == 0 || p.heads == 0) return;
  const int32_t columns = p.heads * p.dim;
  const int32_t threads = std::min(1024, std::max(32, (columns + 31) / 32 * 32));
  change_kernel<<<dim3(p.blocks, p.batch), threads, 0, stream>>>(p);
  FLASHOMNI_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashomni::cuda::policy
