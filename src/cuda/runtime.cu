// FlashOmni CUDA layer: runtime helpers shared by every launcher (error mapping, device checks
// cached per device, dynamic shared-memory opt-in).
#include <cuda_runtime.h>

#include "cuda/runtime.h"

namespace flashomni::cuda {
namespace {

// Per device ordinal, 0 until first queried: compute capability as major * 10 + minor, and the
// SM count. Launchers read them on every call (two driver attribute queries per sparse_attention
// call before); a device's properties never change in a process. Relaxed atomics suffice: two
// threads racing on the first query both store the same value.
std::atomic<int> g_compute_capability[kMaxCachedDevices];
std::atomic<int> g_sm_count[kMaxCachedDevices];

std::atomic<int>* device_slot(std::atomic<int>* table, int device) {
  return device >= 0 && device < kMaxCachedDevices ? &table[device] : nullptr;
}

// The compute capability of `device` as major * 10 + minor, or 0 when the query fails (not
// cached: the next call asks again).
int compute_capability(int device) {
  std::atomic<int>* slot = device_slot(g_compute_capability, device);
  if (slot != nullptr) {
    const int cached = slot->load(std::memory_order_relaxed);
    if (cached != 0) return cached;
  }
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    return 0;
  }
  const int value = major * 10 + minor;
  if (slot != nullptr) slot->store(value, std::memory_order_relaxed);
  return value;
}

}  // namespace

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw Error(Status::kCudaError, detail::concat(what, ": ", cudaGetErrorName(err), " (",
                                                   cudaGetErrorString(err), ")"));
  }
}

bool device_is_sm90() {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return false;
  return compute_capability(device) == 90;
}

int sm_count() {
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  std::atomic<int>* slot = device_slot(g_sm_count, device);
  if (slot != nullptr) {
    const int cached = slot->load(std::memory_order_relaxed);
    if (cached != 0) return cached;
  }
  int count = 0;
  check_cuda(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device),
             "cudaDeviceGetAttribute(MultiProcessorCount)");
  if (slot != nullptr) slot->store(count, std::memory_order_relaxed);
  return count;
}

void DynamicSmemLimit::ensure(const void* kernel, std::size_t bytes) {
  // Without opt-in a CTA may use 48 KB of static plus dynamic shared memory. 1 KB is left for the
  // static part (the policy kernels declare < 64 bytes): a dynamic size just under 48 KB (a policy
  // query CTA at 1445 query blocks: 49141 bytes) would otherwise fail to launch.
  if (bytes <= 47 * 1024) return;
  int device = 0;
  FLASHOMNI_CUDA_CHECK(cudaGetDevice(&device));
  const int want = static_cast<int>(bytes);
  std::atomic<int>* slot = device_slot(bytes_, device);
  // Acquire pairs with the release below: a thread that sees the new limit launches after the
  // driver call that set it returned.
  if (slot != nullptr && slot->load(std::memory_order_acquire) >= want) return;
  const std::lock_guard<std::mutex> lock(grow_);
  if (slot != nullptr && slot->load(std::memory_order_relaxed) >= want) return;
  FLASHOMNI_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, want));
  if (slot != nullptr) slot->store(want, std::memory_order_release);
}

}  // namespace flashomni::cuda
