// FlashOmni demo (apps layer): the GPU attention backend of flashomni_demo — cuda::sparse_attention
// run on device copies of the engine's host tensors. The .cpp is compiled only when the library has
// CUDA (FLASHOMNI_WITH_CUDA); this header has no CUDA types, so demo.cpp stays plain C++.
//
// Per call (LayerEngine's backend, engine.h): q, k, v, the pre-filled out (the engine has written
// the forecast into the cached rows), lse when given, and the symbol words go to the device; the
// kernel runs; out (and lse) come back after a stream sync. Device buffers are allocated once, in
// the constructor, for the one shape the demo runs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "flashomni/attention.h"

namespace flashomni::demo {

// "" when cuda::sparse_attention can run here: a CUDA device 0 of compute capability 9.0 (the
// kernels are built for sm_90a only). Otherwise why not, e.g. "no CUDA device (cudaGetDeviceCount:
// cudaErrorNoDevice)". Never throws: a missing GPU or driver is an answer, not an error.
std::string cuda_unavailable_reason();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" for device 0; call only when available.
std::string cuda_device_description();

class CudaAttention {
 public:
  // q/k/v/out [1, tokens, heads, head_dim] in `dtype` (bf16 or fp16), lse fp32 [1, heads, tokens],
  // symbols of `symbols` (block_q = block_kv = 128: the kernel tile).
  CudaAttention(int64_t tokens, int64_t heads, int64_t head_dim, DType dtype,
                const SymbolShape& symbols);
  ~CudaAttention();
  CudaAttention(const CudaAttention&) = delete;
  CudaAttention& operator=(const CudaAttention&) = delete;

  // The engine's attention call: `host` holds CPU tensors of the constructor's shape (contiguous),
  // symbols on the host or nullptr (dense). Cached rows of out/lse keep the host's values.
  void run(const AttentionParams& host);
  // GPU time of the last run's cuda::sparse_attention (planner + kernel, cudaEvent), ms.
  double last_kernel_ms() const;
  // Dense attention of host q/k/v on the GPU into a device scratch buffer (nothing comes back);
  // returns its GPU time (planner + kernel, cudaEvent), ms: the dense baseline of the step.
  double dense_kernel_ms(const AttentionParams& host);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flashomni::demo
