// FlashOmni core: dtype/device enums, status codes and the error type every layer reports with.
// Framework-free (no PyTorch); shared by the CPU backend, the CUDA launchers and the C API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#if defined(__CUDACC__)
#define FLASHOMNI_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FLASHOMNI_HOST_DEVICE inline
#endif

namespace flashomni {

// Values are part of the C ABI (flashomni.h mirrors them): never renumber.
enum class DType : int32_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
  kFloat64 = 3,
  kInt32 = 4,
  kUInt32 = 5,
  kUInt8 = 6,
};

enum class Device : int32_t { kCPU = 0, kCUDA = 1 };

enum class Status : int32_t {
  kOk = 0,
  kInvalidArgument = 1,  // a caller error: shape, dtype, stride, symbol size, ...
  kUnsupported = 2,      // valid request this build cannot serve (no CUDA, head dim 96 on GPU, ...)
  kCudaError = 3,
  kInternal = 4,
};

const char* dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);

// Every error carries a status and a message that names the offending argument.
class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// Throws kInvalidArgument with "argument '<name>': <message>".
template <typename... Args>
[[noreturn]] void fail_argument(std::string_view name, const Args&... message) {
  throw Error(Status::kInvalidArgument,
              detail::concat("argument '", name, "': ", message...));
}

template <typename... Args>
[[noreturn]] void fail_unsupported(const Args&... message) {
  throw Error(Status::kUnsupported, detail::concat(message...));
}

}  // namespace flashomni

// Argument check used by validators: FLASHOMNI_CHECK_ARG(q.ndim == 3, "q", "expected 3 dims, got ", q.ndim)
#define FLASHOMNI_CHECK_ARG(cond, name, ...)       \
  do {                                             \
    if (!(cond)) ::flashomni::fail_argument(name, __VA_ARGS__); \
  } while (0)
