// FlashOmni core: dtype names/sizes, TensorRef construction and the shared argument checks.
#include "flashomni/tensor.h"

#include <string>

namespace flashomni {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat64: return "float64";
    case DType::kInt32: return "int32";
    case DType::kUInt32: return "uint32";
    case DType::kUInt8: return "uint8";
  }
  return "unknown";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat64: return 8;
    case DType::kFloat32:
    case DType::kInt32:
    case DType::kUInt32: return 4;
    case DType::kFloat16:
    case DType::kBFloat16: return 2;
    case DType::kUInt8: return 1;
  }
  return 0;
}

TensorRef make_tensor(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device) {
  TensorRef t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  if (shape.size() > static_cast<std::size_t>(kMaxDims)) {
    fail_argument("shape", "at most ", kMaxDims, " dims, got ", shape.size());
  }
  t.ndim = static_cast<int32_t>(shape.size());
  int i = 0;
  for (int64_t s : shape) t.shape[i++] = s;
  int64_t stride = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.stride[d] = stride;
    stride *= t.shape[d];
  }
  return t;
}

void check_defined(const TensorRef& t, const char* name) {
  FLASHOMNI_CHECK_ARG(t.defined(), name, "is required but was not given (null data pointer)");
}

void check_dtype(const TensorRef& t, const char* name, std::initializer_list<DType> allowed) {
  for (DType d : allowed) {
    if (t.dtype == d) return;
  }
  std::string expect;
  for (DType d : allowed) expect += std::string(expect.empty() ? "" : " or ") + dtype_name(d);
  fail_argument(name, "expected dtype ", expect, ", got ", dtype_name(t.dtype));
}

void check_ndim(const TensorRef& t, const char* name, std::initializer_list<int> allowed) {
  for (int n : allowed) {
    if (t.ndim == n) return;
  }
  std::string expect;
  for (int n : allowed) expect += (expect.empty() ? "" : " or ") + std::to_string(n);
  fail_argument(name, "expected ", expect, " dims, got ", t.ndim);
}

void check_device(const TensorRef& t, const char* name, Device device) {
  FLASHOMNI_CHECK_ARG(t.device == device, name, "expected a ",
                      device == Device::kCPU ? "CPU" : "CUDA", " tensor, got a ",
                      t.device == Device::kCPU ? "CPU" : "CUDA", " tensor");
}

void check_last_dim_contiguous(const TensorRef& t, const char* name) {
  FLASHOMNI_CHECK_ARG(t.ndim > 0 && t.stride[t.ndim - 1] == 1, name,
                      "last dimension must be contiguous (stride 1), got stride ",
                      t.ndim > 0 ? t.stride[t.ndim - 1] : 0);
}

}  // namespace flashomni
