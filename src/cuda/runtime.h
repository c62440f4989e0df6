// FlashOmni CUDA layer: runtime helpers (error mapping to flashomni::Error, device queries cached
// per device, dynamic shared-memory opt-in).
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <mutex>

#include "flashomni/common.h"

namespace flashomni::cuda {

// Device ordinals whose properties are cached; a process seeing more GPUs queries the driver for
// the others on every call (correct, only slower).
inline constexpr int kMaxCachedDevices = 64;

// Throws Error(kCudaError) naming `what` when err != cudaSuccess.
void check_cuda(cudaError_t err, const char* what);
// True on a compute capability 9.0 (Hopper) device; the kernels are built for sm_90a only. False
// when there is no current device. Queried once per device, then cached.
bool device_is_sm90();
// Streaming multiprocessors of the current device (queried once per device, then cached).
int sm_count();

// A kernel's dynamic shared-memory limit on each device
// (cudaFuncAttributeMaxDynamicSharedMemorySize is a per-device attribute of the function). ensure()
// raises it to at least `bytes` on the current device and calls the driver only when it must grow,
// so a launcher calls it on every launch: a fixed-size kernel (attention, > 48 KB) sets it once per
// device, a size-dependent one (a policy row CTA: 13 bytes per padded key block, above 48 KB from
// 2049 key blocks) once per new maximum. The limit never shrinks, so a concurrent launch that needs
// a larger size never sees it lowered under it. One object per kernel, usually a function-local
// static (constant-initialised).
class DynamicSmemLimit {
 public:
  void ensure(const void* kernel, std::size_t bytes);

 private:
  std::atomic<int> bytes_[kMaxCachedDevices] = {};  // limit set so far per device, 0: none
  std::mutex grow_;                                 // serialises raising the limit
};

}  // namespace flashomni::cuda

#define FLASHOMNI_CUDA_CHECK(expr) ::flashomni::cuda::check_cuda((expr), #expr)
