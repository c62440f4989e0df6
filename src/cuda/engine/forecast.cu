// FlashOmni CUDA layer (engine): the Taylor forecast out = sum_p w_p history_p (forecast.h) as
// one bandwidth-bound elementwise pass; the weights come from the host (check_forecast), so the
// call is capturable. Used on the GEMM-O cache C or on the attention output of cached blocks.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "cuda/runtime.h"
#include "flashomni/policy_cuda.h"

namespace flashomni::cuda {
namespace {

struct ForecastKernelParams {
  const void* history[kMaxForecastPoints] = {};
  DType history_dtype[kMaxForecastPoints] = {};
  double weight[kMaxForecastPoints] = {};
  int32_t points = 0;
  void* out = nullptr;
  DType out_dtype = DType::kFloat32;
  int64_t size = 0;
  bool vector = false;  // every pointer 16-byte aligned: 8 elements per thread via vector loads
};

constexpr int kElems = 8;  // elements per thread on the vector path (16 bytes of 16-bit data)

// Reads 8 consecutive elements (vector loads) or one element, widened to float (exact for every
// accepted dtype: the CPU TaylorForecast stores its values as fp32 too).
__device__ __forceinline__ void load8(const void* base, DType dtype, int64_t e, float* v) {
  if (dtype == DType::kFloat32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(base) + e);
    const float4 a = p[0], b = p[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    return;
  }
  const uint4 raw = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(base) + e);
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const auto lo = static_cast<uint16_t>(words[i] & 0xffffu);
    const auto hi = static_cast<uint16_t>(words[i] >> 16);
    if (dtype == DType::kBFloat16) {
      v[2 * i] = __uint_as_float(static_cast<uint32_t>(lo) << 16);
      v[2 * i + 1] = __uint_as_float(static_cast<uint32_t>(hi) << 16);
    } else {
      v[2 * i] = __half2float(__ushort_as_half(lo));
      v[2 * i + 1] = __half2float(__ushort_as_half(hi));
    }
  }
}

__device__ __forceinline__ float load1(const void* base, DType dtype, int64_t e) {
  if (dtype == DType::kFloat32) return static_cast<const float*>(base)[e];
  const uint16_t bits = static_cast<const uint16_t*>(base)[e];
  if (dtype == DType::kBFloat16) return __uint_as_float(static_cast<uint32_t>(bits) << 16);
  return __half2float(__ushort_as_half(bits));
}

// The host's store_from_double: round to float, then to the 16-bit type (round to nearest even).
__device__ __forceinline__ void store1(void* base, DType dtype, int64_t e, double value) {
  const float f = __double2float_rn(value);
  if (dtype == DType::kFloat32) {
    static_cast<float*>(base)[e] = f;
  } else if (dtype == DType::kBFloat16) {
    static_cast<__nv_bfloat16*>(base)[e] = __float2bfloat16_rn(f);
  } else {
    static_cast<__half*>(base)[e] = __float2half_rn(f);
  }
}

// Stores 8 consecutive results with 16-byte stores (one for 16-bit types, two for fp32), each
// rounded as store1 does. With 8 scalar stores per thread (each warp store instruction touching
// 32 values 8 elements apart) the order-2 forecast moved 1449 GB/s in fp32 and 1249 in bf16 on
// the H100; with these 2946 and 2893 GB/s at [33792, 3072] (forecast_ab_h100_5aeb571.log).
__device__ __forceinline__ void store8(void* base, DType dtype, int64_t e, const double* value) {
  if (dtype == DType::kFloat32) {
    float4* p = reinterpret_cast<float4*>(static_cast<float*>(base) + e);
    p[0] = make_float4(__double2float_rn(value[0]), __double2float_rn(value[1]),
                       __double2float_rn(value[2]), __double2float_rn(value[3]));
    p[1] = make_float4(__double2float_rn(value[4]), __double2float_rn(value[5]),
                       __double2float_rn(value[6]), __double2float_rn(value[7]));
    return;
  }
  uint32_t words[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float lo = __double2float_rn(value[2 * i]), hi = __double2float_rn(value[2 * i + 1]);
    uint16_t l, h;
    if (dtype == DType::kBFloat16) {
      l = __bfloat16_as_ushort(__float2bfloat16_rn(lo));
      h = __bfloat16_as_ushort(__float2bfloat16_rn(hi));
    } else {
      l = __half_as_ushort(__float2half_rn(lo));
      h = __half_as_ushort(__float2half_rn(hi));
    }
    words[i] = static_cast<uint32_t>(l) | (static_cast<uint32_t>(h) << 16);
  }
  *reinterpret_cast<uint4*>(static_cast<uint16_t*>(base) + e) =
      make_uint4(words[0], words[1], words[2], words[3]);
}

// acc = sum_p w_p * v_p in the oracle's order with separate roundings (no fused multiply-add).
__device__ __forceinline__ double weighted(const ForecastKernelParams& p, const float* v) {
  double acc = 0.0;
#pragma unroll
  for (int32_t k = 0; k < kMaxForecastPoints; ++k) {
    if (k < p.points) acc = __dadd_rn(acc, __dmul_rn(p.weight[k], static_cast<double>(v[k])));
  }
  return acc;
}

__global__ void forecast_kernel(ForecastKernelParams p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t vec_end = p.vector ? p.size / kElems * kElems : 0;
  for (int64_t e = t * kElems; e < vec_end; e += stride * kElems) {
    float v[kMaxForecastPoints][kElems] = {};
#pragma unroll
    for (int32_t k = 0; k < kMaxForecastPoints; ++k) {
      if (k < p.points) load8(p.history[k], p.history_dtype[k], e, v[k]);
    }
    double y[kElems];
#pragma unroll
    for (int i = 0; i < kElems; ++i) {
      float x[kMaxForecastPoints];
#pragma unroll
      for (int32_t k = 0; k < kMaxForecastPoints; ++k) x[k] = v[k][i];
      y[i] = weighted(p, x);
    }
    store8(p.out, p.out_dtype, e, y);
  }
  for (int64_t e = vec_end + t; e < p.size; e += stride) {
    float x[kMaxForecastPoints] = {};
#pragma unroll
    for (int32_t k = 0; k < kMaxForecastPoints; ++k) {
      if (k < p.points) x[k] = load1(p.history[k], p.history_dtype[k], e);
    }
    store1(p.out, p.out_dtype, e, weighted(p, x));
  }
}

}  // namespace

void forecast(const ForecastParams& p, void* stream) {
  const std::vector<double> w = check_forecast(p, Device::kCUDA);
  ForecastKernelParams k;
  k.points = static_cast<int32_t>(w.size());
  const auto first = static_cast<int32_t>(p.history.size()) - k.points;
  bool aligned = reinterpret_cast<uintptr_t>(p.out.data) % 16 == 0;
  for (int32_t i = 0; i < k.points; ++i) {
    const TensorRef& h = p.history[first + i];
    k.history[i] = h.data;
    k.history_dtype[i] = h.dtype;
    k.weight[i] = w[i];
    aligned = aligned && reinterpret_cast<uintptr_t>(h.data) % 16 == 0;
  }
  k.out = p.out.data;
  k.out_dtype = p.out.dtype;
  k.size = p.out.numel();
  k.vector = aligned;
  if (k.size == 0) return;
  // Enough CTAs to cover the H100's 132 SMs several times; the grid-stride loop does the rest.
  constexpr int kThreads = 256;
  const int64_t per_cta = static_cast<int64_t>(kThreads) * kElems;
  const int64_t ctas = std::min<int64_t>((k.size + per_cta - 1) / per_cta, 132 * 16);
  forecast_kernel<<<static_cast<unsigned>(ctas), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      k);
  FLASHOMNI_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashomni::cuda
