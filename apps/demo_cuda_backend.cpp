// FlashOmni demo (apps layer): CudaAttention, flashomni_demo's GPU backend (demo_cuda_backend.h).
// Built only with FLASHOMNI_WITH_CUDA; talks to the CUDA runtime directly (the library's
// cudart_static comes through its public link interface).
#include "demo_cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "flashomni/cuda_ops.h"

namespace flashomni::demo {
namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw Error(Status::kCudaError,
                detail::concat("flashomni_demo (CUDA backend): ", what, ": ", cudaGetErrorName(err),
                               " (", cudaGetErrorString(err), ")"));
  }
}

#define FLASHOMNI_DEMO_CUDA_CHECK(expr) check((expr), #expr)

// Host tensor `t` must be the contiguous CPU [1, tokens, heads, d] (or fp32 lse [1, heads, tokens])
// that the device buffer mirrors: the copies are one flat memcpy each.
void check_host(const TensorRef& t, const char* name, DType dtype, int64_t a, int64_t b,
                int64_t c) {
  check_defined(t, name);
  check_device(t, name, Device::kCPU);
  check_dtype(t, name, {dtype});
  FLASHOMNI_CHECK_ARG(t.ndim == 4 && t.shape[0] == 1 && t.shape[1] == a && t.shape[2] == b &&
                          t.shape[3] == c && t.is_contiguous(),
                      name, "expected a contiguous CPU tensor [1, ", a, ", ", b, ", ", c,
                      "] as set up for the demo's CUDA backend");
}

bool same_shape(const SymbolShape& x, const SymbolShape& y) {
  return x.batch == y.batch && x.heads == y.heads && x.q_blocks == y.q_blocks &&
         x.kv_blocks == y.kv_blocks && x.block_q == y.block_q && x.block_kv == y.block_kv;
}

}  // namespace

std::string cuda_unavailable_reason() {
  int count = 0;
  // No driver (cudaErrorInsufficientDriver), no device (cudaErrorNoDevice), a broken install: all
  // mean "no GPU" for the demo, which then runs on the CPU.
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it: nothing else in this process will touch CUDA
    return detail::concat("no usable CUDA device (cudaGetDeviceCount: ", cudaGetErrorName(err),
                          ")");
  }
  if (count == 0) return "no CUDA device";
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) != cudaSuccess) {
    cudaGetLastError();
    return "CUDA device 0 does not answer (cudaDeviceGetAttribute failed)";
  }
  if (major != 9 || minor != 0) {
    return detail::concat("CUDA device 0 is sm_", major, minor,
                          "; the kernels are built for sm_90a (Hopper) only");
  }
  return "";
}

std::string cuda_device_description() {
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof(prop));
  FLASHOMNI_DEMO_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  return detail::concat(prop.name, " (sm_", prop.major, prop.minor, ", ", prop.multiProcessorCount,
                        " SMs)");
}

struct CudaAttention::Impl {
  int64_t tokens = 0, heads = 0, head_dim = 0;
  DType dtype = DType::kBFloat16;
  SymbolShape symbols;
  std::size_t tensor_bytes = 0, lse_bytes = 0, workspace_bytes = 0;
  void *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr, *dense_out = nullptr;
  void *lse = nullptr, *q_bits = nullptr, *kv_bits = nullptr, *workspace = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  float last_ms = 0.0f;

  ~Impl() {
    // Teardown errors are ignored: nothing useful can be done with them at exit.
    for (void* p : {q, k, v, out, dense_out, lse, q_bits, kv_bits, workspace}) {
      if (p != nullptr) cudaFree(p);
    }
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }

  TensorRef device_tensor(void* data) const {
    return make_tensor(data, dtype, {1, tokens, heads, head_dim}, Device::kCUDA);
  }

  // Device params for q/k/v and `out_data`; lse only when the host call has one.
  AttentionParams device_params(void* out_data, bool with_lse, float softmax_scale) const {
    AttentionParams p;
    p.q = device_tensor(q), p.k = device_tensor(k), p.v = device_tensor(v);
    p.out = device_tensor(out_data);
    if (with_lse) p.lse = make_tensor(lse, DType::kFloat32, {1, heads, tokens}, Device::kCUDA);
    p.softmax_scale = softmax_scale;
    return p;
  }

  void upload_qkv(const AttentionParams& host) {
    check_host(host.q, "q", dtype, tokens, heads, head_dim);
    check_host(host.k, "k", dtype, tokens, heads, head_dim);
    check_host(host.v, "v", dtype, tokens, heads, head_dim);
    const auto h2d = cudaMemcpyHostToDevice;
    FLASHOMNI_DEMO_CUDA_CHECK(cudaMemcpyAsync(q, host.q.data, tensor_bytes, h2d, stream));
    FLASHOMNI_DEMO_CUDA_CHECK(cudaMemcpyAsync(k, host.k.data, tensor_bytes, h2d, stream));
    FLASHOMNI_DEMO_CUDA_CHECK(cudaMemcpyAsync(v, host.v.data, tensor_bytes, h2d, stream));
  }

  // cuda::sparse_attention between two events on the stream; returns its GPU time in ms, after a
  // stream sync.
  float timed_attention(const AttentionParams& p) {
    FLASHOMNI_DEMO_CUDA_CHECK(cudaEventRecord(start, stream));
    cuda::sparse_attention(p, workspace, workspace_bytes, stream);
    FLASHOMNI_DEMO_CUDA_CHECK(cudaGetLastError());
    FLASHOMNI_DEMO_CUDA_CHECK(cudaEventRecord(stop, stream));
    FLASHOMNI_DEMO_CUDA_CHECK(cudaStreamSynchronize(stream));
    float ms = 0.0f;
    FLASHOMNI_DEMO_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms;
  }
};

CudaAttention::CudaAttention(int64_t tokens, int64_t heads, int64_t head_dim, DType dtype,
                             const SymbolShape& symbols)
    : impl_(std::make_unique<Impl>()) {
  FLASHOMNI_CHECK_ARG(dtype == DType::kBFloat16 || dtype == DType::kFloat16, "dtype",
                      "expected bf16 or fp16 (the CUDA kernels' storage types), got ",
                      dtype_name(dtype));
  Impl& m = *impl_;
  m.tokens = tokens, m.heads = heads, m.head_dim = head_dim, m.dtype = dtype;
  m.symbols = symbols;
  m.tensor_bytes = static_cast<std::size_t>(tokens * heads * head_dim) * dtype_size(dtype);
  m.lse_bytes = static_cast<std::size_t>(heads * tokens) * sizeof(float);
  FLASHOMNI_DEMO_CUDA_CHECK(cudaSetDevice(0));
  FLASHOMNI_DEMO_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  FLASHOMNI_DEMO_CUDA_CHECK(cudaEventCreate(&m.start));
  FLASHOMNI_DEMO_CUDA_CHECK(cudaEventCreate(&m.stop));
  // cudaMalloc returns 256-byte aligned pointers: the kernel's TMA needs 16.
  for (void** p : {&m.q, &m.k, &m.v, &m.out, &m.dense_out}) {
    FLASHOMNI_DEMO_CUDA_CHECK(cudaMalloc(p, m.tensor_bytes));
    FLASHOMNI_DEMO_CUDA_CHECK(cudaMemsetAsync(*p, 0, m.tensor_bytes, m.stream));
  }
  FLASHOMNI_DEMO_CUDA_CHECK(cudaMalloc(&m.lse, m.lse_bytes));
  FLASHOMNI_DEMO_CUDA_CHECK(cudaMalloc(&m.q_bits, std::max<int64_t>(1, symbols.q_size()) * 4));
  FLASHOMNI_DEMO_CUDA_CHECK(cudaMalloc(&m.kv_bits, std::max<int64_t>(1, symbols.kv_size()) * 4));
  // The workspace depends on shapes only (cuda_ops.h): one allocation serves every step.
  const AttentionParams dense = m.device_params(m.dense_out, false, 0.0f);
  m.workspace_bytes = cuda::sparse_attention_workspace_size(dense);
  FLASHOMNI_DEMO_CUDA_CHECK(cudaMalloc(&m.workspace, std::max<std::size_t>(1, m.workspace_bytes)));
  // Warm-up on the zeroed buffers: the first launch loads the module and sets the kernel's
  // shared-memory attribute (milliseconds), which step 0's timing should not carry.
  m.timed_attention(dense);
}

CudaAttention::~CudaAttention() = default;

void CudaAttention::run(const AttentionParams& host) {
  Impl& m = *impl_;
  m.upload_qkv(host);
  check_host(host.out, "out", m.dtype, m.tokens, m.heads, m.head_dim);
  const bool with_lse = host.lse.defined();
  if (with_lse) {
    check_device(host.lse, "lse", Device::kCPU);
    check_dtype(host.lse, "lse", {DType::kFloat32});
    FLASHOMNI_CHECK_ARG(
        host.lse.ndim == 3 && host.lse.numel() == m.heads * m.tokens && host.lse.is_contiguous(),
        "lse", "expected a contiguous CPU fp32 tensor [1, ", m.heads, ", ", m.tokens, "]");
  }
  const auto h2d = cudaMemcpyHostToDevice, d2h = cudaMemcpyDeviceToHost;
  // out (and lse) go up too: cached rows must keep the forecast the engine wrote there (spec §2).
  FLASHOMNI_DEMO_CUDA_CHECK(cudaMemcpyAsync(m.out, host.out.data, m.tensor_bytes, h2d, m.stream));
  if (with_lse) {
    FLASHOMNI_DEMO_CUDA_CHECK(cudaMemcpyAsync(m.lse, host.lse.data, m.lse_bytes, h2d, m.stream));
  }
  AttentionParams p = m.device_params(m.out, with_lse, host.softmax_scale);
  SymbolsRef symbols;
  if (host.symbols != nullptr) {
    const SymbolsRef& s = *host.symbols;
    FLASHOMNI_CHECK_ARG(s.device == Device::kCPU, "symbols.device", "expected host words");
    FLASHOMNI_CHECK_ARG(same_shape(s.shape, m.symbols), "symbols",
                        "expected the shape the CUDA backend was set up for (", m.symbols.q_blocks,
                        " x ", m.symbols.kv_blocks, " blocks of ", m.symbols.block_q, ")");
    FLASHOMNI_DEMO_CUDA_CHECK(
        cudaMemcpyAsync(m.q_bits, s.q_bits, m.symbols.q_size() * 4, h2d, m.stream));
    FLASHOMNI_DEMO_CUDA_CHECK(
        cudaMemcpyAsync(m.kv_bits, s.kv_bits, m.symbols.kv_size() * 4, h2d, m.stream));
    symbols = SymbolsRef{static_cast<const uint32_t*>(m.q_bits),
                         static_cast<const uint32_t*>(m.kv_bits), m.symbols, Device::kCUDA};
    p.symbols = &symbols;
  }
  m.last_ms = m.timed_attention(p);
  FLASHOMNI_DEMO_CUDA_CHECK(cudaMemcpyAsync(host.out.data, m.out, m.tensor_bytes, d2h, m.stream));
  if (with_lse) {
    FLASHOMNI_DEMO_CUDA_CHECK(cudaMemcpyAsync(host.lse.data, m.lse, m.lse_bytes, d2h, m.stream));
  }
  FLASHOMNI_DEMO_CUDA_CHECK(cudaStreamSynchronize(m.stream));
}

double CudaAttention::last_kernel_ms() const {
  return impl_->last_ms;
}

double CudaAttention::dense_kernel_ms(const AttentionParams& host) {
  Impl& m = *impl_;
  m.upload_qkv(host);
  return m.timed_attention(m.device_params(m.dense_out, false, host.softmax_scale));
}

}  // namespace flashomni::demo
