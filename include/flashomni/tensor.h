// FlashOmni core: TensorRef, a non-owning view (pointer, dtype, device, shape, strides in elements).
// This is how every layer passes arrays; the C API's fo_tensor has the same fields.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "flashomni/common.h"

namespace flashomni {

inline constexpr int kMaxDims = 4;

struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  Device device = Device::kCPU;
  int32_t ndim = 0;  // 0 with data == nullptr means "not given" (optional arguments)
  int64_t shape[kMaxDims] = {0, 0, 0, 0};
  int64_t stride[kMaxDims] = {0, 0, 0, 0};  // in elements, not bytes

  bool defined() const { return data != nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  bool is_contiguous() const {
    int64_t expect = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (shape[i] != 1 && stride[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

// Builds a contiguous TensorRef (tests, demo, converters).
TensorRef make_tensor(void* data, DType dtype, std::initializer_list<int64_t> shape,
                      Device device = Device::kCPU);

// Common argument checks; each throws fail_argument naming `name`.
void check_defined(const TensorRef& t, const char* name);
void check_dtype(const TensorRef& t, const char* name, std::initializer_list<DType> allowed);
void check_ndim(const TensorRef& t, const char* name, std::initializer_list<int> allowed);
void check_device(const TensorRef& t, const char* name, Device device);
void check_last_dim_contiguous(const TensorRef& t, const char* name);

}  // namespace flashomni
