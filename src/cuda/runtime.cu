// FlashOmni CUDA layer: runtime helpers shared by every launcher (error mapping, device checks).
#include "cuda/runtime.h"

#include <cuda_runtime.h>

namespace flashomni::cuda {

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw Error(Status::kCudaError,
                detail::concat(what, ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")"));
  }
}

bool device_is_sm90() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  return major == 9 && minor == 0;
}

int sm_count() {
  int device = 0, count = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute(MultiProcessorCount)");
  return count;
}

}  // namespace flashomni::cuda
