// FlashOmni core (internal): tensor layout checks shared by check_attention and check_gemm_*.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "flashomni/tensor.h"

namespace flashomni::detail {

inline std::string shape_str(const int64_t* shape, int ndim) {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
inline std::string shape_str(const TensorRef& t) {
  return shape_str(t.shape, t.ndim);
}

// Requires t.shape == expect exactly; `dims` spells the expected layout, e.g. "[B, Nq, H, d]".
inline void check_shape(const TensorRef& t, const char* name, std::initializer_list<int64_t> expect,
                        const char* dims) {
  int64_t e[kMaxDims] = {0, 0, 0, 0};
  int n = 0;
  for (int64_t v : expect) e[n++] = v;
  bool ok = t.ndim == n;
  for (int i = 0; ok && i < n; ++i) ok = t.shape[i] == e[i];
  FLASHOMNI_CHECK_ARG(ok, name, "expected shape ", dims, " = ", shape_str(e, n), ", got ",
                      shape_str(t));
}

// Storage dtypes of q/k/v/x/a/weights: the kernels are 16-bit only, the oracle takes any float.
inline void check_storage_dtype(const TensorRef& t, const char* name, Device device) {
  if (device == Device::kCUDA) {
    check_dtype(t, name, {DType::kBFloat16, DType::kFloat16});
  } else {
    check_dtype(t, name, {DType::kBFloat16, DType::kFloat16, DType::kFloat32, DType::kFloat64});
  }
}

inline void check_same_dtype(const TensorRef& t, const char* name, DType dtype, const char* other) {
  FLASHOMNI_CHECK_ARG(t.dtype == dtype, name, "expected dtype ", dtype_name(dtype), " (same as ",
                      other, "), got ", dtype_name(t.dtype));
}

// Device, non-negative strides, contiguous last dim, element-aligned base pointer; on CUDA also a
// 16-byte aligned base and 16-byte multiple strides on every dim of extent > 1 (TMA descriptors
// require both; a [.., 100, d] bf16 view sliced at an odd row would otherwise fault on the GPU).
inline void check_layout(const TensorRef& t, const char* name, Device device,
                         bool tma_aligned = true) {
  check_device(t, name, device);
  for (int i = 0; i < t.ndim; ++i) {
    FLASHOMNI_CHECK_ARG(t.shape[i] >= 0, name, "negative extent ", t.shape[i], " in dim ", i);
    FLASHOMNI_CHECK_ARG(t.stride[i] >= 0, name, "negative stride ", t.stride[i], " in dim ", i);
  }
  check_last_dim_contiguous(t, name);
  const auto addr = reinterpret_cast<std::uintptr_t>(t.data);
  const std::size_t elem = dtype_size(t.dtype);
  FLASHOMNI_CHECK_ARG(addr % elem == 0, name, "data pointer must be aligned to its element size ",
                      elem, " bytes");
  if (device != Device::kCUDA || !tma_aligned) return;
  FLASHOMNI_CHECK_ARG(addr % 16 == 0, name, "data pointer must be 16-byte aligned on CUDA (TMA)");
  for (int i = 0; i + 1 < t.ndim; ++i) {
    FLASHOMNI_CHECK_ARG(t.shape[i] <= 1 || (t.stride[i] * static_cast<int64_t>(elem)) % 16 == 0,
                        name, "stride of dim ", i, " is ", t.stride[i] * static_cast<int64_t>(elem),
                        " bytes; CUDA (TMA) needs a multiple of 16");
  }
}

inline constexpr int64_t kMaxInt32 = 2147483647;

}  // namespace flashomni::detail
