// FlashOmni CUDA layer: runtime helpers (error mapping to flashomni::Error, device queries).
#pragma once

#include <cuda_runtime.h>

#include "flashomni/common.h"

namespace flashomni::cuda {

// Throws Error(kCudaError) naming `what` when err != cudaSuccess.
void check_cuda(cudaError_t err, const char* what);
// True on a compute capability 9.0 (Hopper) device; the kernels are built for sm_90a only.
bool device_is_sm90();
int sm_count();

}  // namespace flashomni::cuda

#define FLASHOMNI_CUDA_CHECK(expr) ::flashomni::cuda::check_cuda((expr), #expr)
