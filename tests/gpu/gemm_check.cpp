// FlashOmni GPU check program: cuda::gemm_q / gemm_o_update / gemm_o_dispatch against the CPU
// oracle (cpu::* on the same 16-bit inputs). Covers random symbols at densities 0..1, dense mode,
// row tails and row_offset (partial first/last tiles), batch, block_q = 256, head dims 64/128,
// both dtypes, bias or none, extra always-active columns, N not a multiple of 256, fp32 and
// 16-bit caches, untouched inactive tiles (poisoned output), update-then-dispatch bit equality,
// all-active update+dispatch equal to a dense GEMM, determinism, and rejected configurations.
// Prints "N passed, M failed"; exits 1 on failure.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "flashomni/cuda_ops.h"
#include "flashomni/gemm.h"
#include "flashomni/numeric.h"
#include "flashomni/symbols.h"
#include "gpu/check_util.h"

namespace fo = flashomni;
namespace gpu_check = flashomni::gpu_check;

namespace {

using gpu_check::report;

constexpr uint16_t kPoison16 = 0xFFFF;       // NaN in bf16 and fp16: no finite input produces it
constexpr uint32_t kPoison32 = 0x7FC0BEEFu;  // a NaN payload

uint16_t to16(fo::DType t, float f) {
  return t == fo::DType::kBFloat16 ? fo::float_to_bf16(f) : fo::float_to_fp16(f);
}
float from16(fo::DType t, uint16_t h) {
  return t == fo::DType::kBFloat16 ? fo::bf16_to_float(h) : fo::fp16_to_float(h);
}

// A host array and its device twin, both raw bytes of one dtype.
struct Buffer {
  fo::DType dtype = fo::DType::kBFloat16;
  std::vector<int64_t> shape;
  std::vector<uint8_t> host;
  void* dev = nullptr;

  Buffer() = default;
  Buffer(fo::DType t, std::vector<int64_t> s) : dtype(t), shape(std::move(s)) {
    host.resize(numel() * fo::dtype_size(t));
    CUDA_OK(cudaMalloc(&dev, std::max<size_t>(host.size(), 16)));
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(dtype, o.dtype);
    std::swap(shape, o.shape);
    std::swap(host, o.host);
    std::swap(dev, o.dev);
    return *this;
  }
  ~Buffer() {
    if (dev) cudaFree(dev);
  }
  int64_t numel() const {
    int64_t n = 1;
    for (auto v : shape) n *= v;
    return n;
  }
  size_t bytes() const { return host.size(); }
  void upload() { CUDA_OK(cudaMemcpy(dev, host.data(), bytes(), cudaMemcpyHostToDevice)); }
  std::vector<uint8_t> download() const {
    std::vector<uint8_t> h(bytes());
    CUDA_OK(cudaMemcpy(h.data(), dev, bytes(), cudaMemcpyDeviceToHost));
    return h;
  }
  void poison() {
    if (dtype == fo::DType::kFloat32) {
      auto* p = reinterpret_cast<uint32_t*>(host.data());
      std::fill(p, p + numel(), kPoison32);
    } else {
      auto* p = reinterpret_cast<uint16_t*>(host.data());
      std::fill(p, p + numel(), kPoison16);
    }
    upload();
  }
  void fill_random(std::mt19937& rng, float scale) {
    std::normal_distribution<float> normal(0.0f, scale);
    auto* p = reinterpret_cast<uint16_t*>(host.data());
    for (int64_t i = 0; i < numel(); ++i) p[i] = to16(dtype, normal(rng));
    upload();
  }
  fo::TensorRef ref(fo::Device device) {
    fo::TensorRef r;
    r.data = device == fo::Device::kCUDA ? dev : static_cast<void*>(host.data());
    r.dtype = dtype;
    r.device = device;
    r.ndim = static_cast<int32_t>(shape.size());
    int64_t stride = 1;
    for (int i = r.ndim - 1; i >= 0; --i) {
      r.shape[i] = shape[i];
      r.stride[i] = stride;
      stride *= shape[i];
    }
    return r;
  }
  bool poisoned(const std::vector<uint8_t>& h, int64_t i) const {
    if (dtype == fo::DType::kFloat32) {
      uint32_t v;
      std::memcpy(&v, &h[i * 4], 4);
      return v == kPoison32;
    }
    uint16_t v;
    std::memcpy(&v, &h[i * 2], 2);
    return v == kPoison16;
  }
  double value(const std::vector<uint8_t>& h, int64_t i) const {
    if (dtype == fo::DType::kFloat32) {
      float v;
      std::memcpy(&v, &h[i * 4], 4);
      return v;
    }
    uint16_t v;
    std::memcpy(&v, &h[i * 2], 2);
    return from16(dtype, v);
  }
};

// Compares the GPU result with the oracle's (both started from the same poison): elements the
// oracle left untouched must be untouched bit for bit, the others within a relative L2 error.
bool compare(const Buffer& buf, const std::vector<uint8_t>& gpu, const std::vector<uint8_t>& ref,
             double tol, std::string& detail) {
  double err2 = 0, ref2 = 0;
  int64_t touched_wrong = 0, missing = 0, nonfinite = 0, written = 0;
  for (int64_t i = 0; i < buf.numel(); ++i) {
    const bool rp = buf.poisoned(ref, i), gp = buf.poisoned(gpu, i);
    if (rp) {
      if (!gp) ++touched_wrong;
      continue;
    }
    if (gp) {
      ++missing;
      continue;
    }
    const double g = buf.value(gpu, i), r = buf.value(ref, i);
    if (!std::isfinite(g)) ++nonfinite;
    err2 += (g - r) * (g - r);
    ref2 += r * r;
    ++written;
  }
  const double rel = std::sqrt(err2 / std::max(ref2, 1e-30));
  char s[256];
  std::snprintf(s, sizeof(s), "rel_l2=%.2e written=%lld untouched_violations=%lld missing=%lld",
                rel, static_cast<long long>(written), static_cast<long long>(touched_wrong),
                static_cast<long long>(missing));
  detail = s;
  return touched_wrong == 0 && missing == 0 && nonfinite == 0 && rel <= tol;
}

double tolerance(fo::DType t) {
  return t == fo::DType::kBFloat16 ? 1e-2 : 2e-3;
}

// Symbols whose query grid covers rows row_offset .. row_offset + M - 1, random Sq.
struct DeviceSymbols {
  fo::Symbols host;
  uint32_t *dq = nullptr, *dkv = nullptr;
  fo::SymbolsRef ref;
  DeviceSymbols(int batch, int heads, int64_t tokens, int block_q, double density,
                std::mt19937& rng) {
    fo::SymbolShape shape;
    shape.batch = batch;
    shape.heads = heads;
    shape.block_q = block_q;
    shape.block_kv = 128;
    shape.q_blocks = static_cast<int32_t>((tokens + block_q - 1) / block_q);
    shape.kv_blocks = shape.q_blocks;
    host = fo::Symbols(shape);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    for (int b = 0; b < batch; ++b)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < shape.q_blocks; ++i) host.set_query(b, h, i, uni(rng) < density);
    CUDA_OK(cudaMalloc(&dq, std::max<size_t>(4, host.q_bits().size() * 4)));
    CUDA_OK(cudaMalloc(&dkv, std::max<size_t>(4, host.kv_bits().size() * 4)));
    CUDA_OK(cudaMemcpy(dq, host.q_bits().data(), host.q_bits().size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(
        cudaMemcpy(dkv, host.kv_bits().data(), host.kv_bits().size() * 4, cudaMemcpyHostToDevice));
    ref = fo::SymbolsRef{dq, dkv, shape, fo::Device::kCUDA};
  }
  ~DeviceSymbols() {
    cudaFree(dq);
    cudaFree(dkv);
  }
};

// Filled with 0x7f bytes: a K-split flag that was not zeroed reads as counted already and a
// partial that was not written as 3.4e38, so either mistake shows in the results.
struct Workspace {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Workspace(size_t n) : bytes(n) {
    if (n) {
      CUDA_OK(cudaMalloc(&ptr, n));
      CUDA_OK(cudaMemset(ptr, 0x7f, n));
    }
  }
  ~Workspace() {
    if (ptr) cudaFree(ptr);
  }
};

// Runs f() with a launcher setting forced (FLASHOMNI_GEMM_SPLIT_K: the last-round K split;
// FLASHOMNI_GEMM_TALL: GEMM-Q's tall items; FLASHOMNI_GEMM_BIAS_STAGED: the bias by bulk copy
// into shared memory or from global memory; read at each call).
template <typename F>
void with_setting(const char* setting, const char* value, F&& f) {
  setenv(setting, value, 1);
  f();
  unsetenv(setting);
}
template <typename F>
void without_split(F&& f) {
  with_setting("FLASHOMNI_GEMM_SPLIT_K", "0", f);
}

struct QCase {
  std::string name;
  fo::DType dtype = fo::DType::kBFloat16;
  int batch = 1, heads = 4, head_dim = 128, block_q = 128, row_offset = 0;
  int64_t rows = 256, k = 256;
  double density = 0.5;
  bool symbols = true, bias = true, batched = false;
};

void run_q(const QCase& c, std::mt19937& rng) {
  const int64_t n = static_cast<int64_t>(c.heads) * c.head_dim;
  auto act_shape = [&](int64_t cols) {
    return c.batched ? std::vector<int64_t>{c.batch, c.rows, cols}
                     : std::vector<int64_t>{c.rows, cols};
  };
  Buffer x(c.dtype, act_shape(c.k)), w(c.dtype, {n, c.k}), bias(c.dtype, {n}),
      out(c.dtype, act_shape(n));
  x.fill_random(rng, 1.0f);
  w.fill_random(rng, 1.0f / std::sqrt(static_cast<float>(c.k)));
  bias.fill_random(rng, 1.0f);
  std::unique_ptr<DeviceSymbols> sym;
  if (c.symbols) {
    sym = std::make_unique<DeviceSymbols>(c.batched ? c.batch : 1, c.heads, c.rows + c.row_offset,
                                          c.block_q, c.density, rng);
  }
  fo::GemmQParams gp;
  gp.x = x.ref(fo::Device::kCUDA);
  gp.weight = w.ref(fo::Device::kCUDA);
  if (c.bias) gp.bias = bias.ref(fo::Device::kCUDA);
  gp.out = out.ref(fo::Device::kCUDA);
  gp.heads = c.heads;
  gp.head_dim = c.head_dim;
  gp.row_offset = c.row_offset;
  gp.symbols = sym ? &sym->ref : nullptr;
  fo::GemmQParams cp = gp;
  cp.x = x.ref(fo::Device::kCPU);
  cp.weight = w.ref(fo::Device::kCPU);
  if (c.bias) cp.bias = bias.ref(fo::Device::kCPU);
  cp.out = out.ref(fo::Device::kCPU);
  fo::SymbolsRef host_sym;
  if (sym) {
    host_sym = sym->host.ref();
    cp.symbols = &host_sym;
  }
  out.poison();
  fo::cpu::gemm_q(cp);
  const std::vector<uint8_t> expect = out.host;
  Workspace ws(fo::cuda::gemm_q_workspace_size(gp));
  fo::cuda::gemm_q(gp, ws.ptr, ws.bytes, nullptr);
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> got = out.download();
  std::string detail;
  report(compare(out, got, expect, tolerance(c.dtype), detail), "gemm_q " + c.name, detail);
  // Determinism: a second run gives the same bits.
  fo::cuda::gemm_q(gp, ws.ptr, ws.bytes, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  report(out.download() == got, "gemm_q " + c.name + " deterministic", "");
  // The bias loaded from global memory (FLASHOMNI_GEMM_BIAS_STAGED=0, the path an unaligned bias
  // takes): the same values start the same accumulators, so the same bits.
  out.poison();
  with_setting("FLASHOMNI_GEMM_BIAS_STAGED", "0",
               [&] { fo::cuda::gemm_q(gp, ws.ptr, ws.bytes, nullptr); });
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  report(out.download() == got, "gemm_q " + c.name + " bias from global == staged", "");
  // Without the last-round K split (halves where they fit, not the pair K split that the default
  // runs above take for dense cluster lists): the same result within tolerance.
  out.poison();
  without_split([&] { fo::cuda::gemm_q(gp, ws.ptr, ws.bytes, nullptr); });
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> unsplit = out.download();
  report(compare(out, unsplit, expect, tolerance(c.dtype), detail), "gemm_q " + c.name + " unsplit",
         detail);
  // Tall items on and off, unsplit (a K-split launch pairs no heads, so the split is off for
  // these runs, which lets the 3-stage cases run tall items too): a tall item's rows are those
  // of the two one-head items it replaces (the same m64n128 wgmma over the same k-blocks from
  // the same bias), so the unsplit run's bits.
  for (const char* tall : {"1", "0"}) {
    out.poison();
    with_setting("FLASHOMNI_GEMM_TALL", tall,
                 [&] { without_split([&] { fo::cuda::gemm_q(gp, ws.ptr, ws.bytes, nullptr); }); });
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaDeviceSynchronize());
    report(out.download() == unsplit,
           "gemm_q " + c.name + " tall items " + (tall[0] == '1' ? "on" : "off") + " bit-equal",
           "");
  }
}

struct OCase {
  std::string name;
  fo::DType dtype = fo::DType::kBFloat16;
  int batch = 1, heads = 4, head_dim = 128, block_q = 128, row_offset = 0;
  int64_t rows = 256, extra = 0, n = 256;
  double density = 0.5;
  bool symbols = true, bias = true, batched = false, cache_fp32 = true;
};

void run_o(const OCase& c, std::mt19937& rng) {
  const int64_t k = static_cast<int64_t>(c.heads) * c.head_dim + c.extra;
  auto act_shape = [&](int64_t cols) {
    return c.batched ? std::vector<int64_t>{c.batch, c.rows, cols}
                     : std::vector<int64_t>{c.rows, cols};
  };
  const fo::DType cache_t = c.cache_fp32 ? fo::DType::kFloat32 : c.dtype;
  Buffer a(c.dtype, act_shape(k)), w(c.dtype, {c.n, k}), bias(c.dtype, {c.n}),
      cache(cache_t, act_shape(c.n)), out(c.dtype, act_shape(c.n)), out2(c.dtype, act_shape(c.n));
  a.fill_random(rng, 1.0f);
  w.fill_random(rng, 1.0f / std::sqrt(static_cast<float>(k)));
  bias.fill_random(rng, 1.0f);
  std::unique_ptr<DeviceSymbols> sym;
  if (c.symbols) {
    sym = std::make_unique<DeviceSymbols>(c.batched ? c.batch : 1, c.heads, c.rows + c.row_offset,
                                          c.block_q, c.density, rng);
  }
  auto params = [&](fo::Device dev, Buffer& y) {
    fo::GemmOParams p;
    p.a = a.ref(dev);
    p.weight = w.ref(dev);
    if (c.bias) p.bias = bias.ref(dev);
    p.cache = cache.ref(dev);
    p.out = y.ref(dev);
    p.heads = c.heads;
    p.head_dim = c.head_dim;
    p.row_offset = c.row_offset;
    return p;
  };
  fo::GemmOParams gp = params(fo::Device::kCUDA, out), cp = params(fo::Device::kCPU, out);
  gp.symbols = sym ? &sym->ref : nullptr;
  fo::SymbolsRef host_sym;
  if (sym) {
    host_sym = sym->host.ref();
    cp.symbols = &host_sym;
  }
  Workspace ws(fo::cuda::gemm_o_workspace_size(gp));
  // update: C and Y against the oracle.
  cache.poison();
  out.poison();
  fo::cpu::gemm_o_update(cp);
  const std::vector<uint8_t> expect_c = cache.host, expect_y = out.host;
  fo::cuda::gemm_o_update(gp, ws.ptr, ws.bytes, nullptr);
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> got_c = cache.download(), got_y = out.download();
  std::string detail;
  report(compare(cache, got_c, expect_c, c.cache_fp32 ? 1e-4 : tolerance(c.dtype), detail),
         "gemm_o_update " + c.name + " cache", detail);
  report(compare(out, got_y, expect_y, tolerance(c.dtype), detail),
         "gemm_o_update " + c.name + " out", detail);
  // Cache only (update with no out): the same C, bit for bit (same start, same k-block chain).
  fo::GemmOParams co = gp;
  co.out = fo::TensorRef{};
  cache.poison();
  fo::cuda::gemm_o_update(co, ws.ptr, ws.bytes, nullptr);
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  report(cache.download() == got_c, "gemm_o_update " + c.name + " cache only == cache", "");
  // The bias loaded from global memory (FLASHOMNI_GEMM_BIAS_STAGED=0): the same C and Y bits.
  cache.poison();
  out.poison();
  with_setting("FLASHOMNI_GEMM_BIAS_STAGED", "0",
               [&] { fo::cuda::gemm_o_update(gp, ws.ptr, ws.bytes, nullptr); });
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  report(cache.download() == got_c && out.download() == got_y,
         "gemm_o_update " + c.name + " bias from global == staged", "");
  // dispatch from the GPU's cache without the K split: the same Y, bit for bit (update never
  // splits); with it (the default), against the oracle run on that cache, and deterministic.
  fo::GemmOParams gd = gp;
  gd.out = out2.ref(fo::Device::kCUDA);
  out2.poison();
  without_split([&] { fo::cuda::gemm_o_dispatch(gd, ws.ptr, ws.bytes, nullptr); });
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  report(out2.download() == got_y, "gemm_o_dispatch " + c.name + " unsplit == update out (bitwise)",
         "");
  out2.poison();
  fo::cuda::gemm_o_dispatch(gd, ws.ptr, ws.bytes, nullptr);
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<uint8_t> got_y2 = out2.download();
  fo::cuda::gemm_o_dispatch(gd, ws.ptr, ws.bytes, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  report(out2.download() == got_y2, "gemm_o_dispatch " + c.name + " deterministic", "");
  std::copy(got_c.begin(), got_c.end(), cache.host.begin());
  fo::GemmOParams cd = cp;
  cd.out = out2.ref(fo::Device::kCPU);
  std::fill(out2.host.begin(), out2.host.end(), 0);
  out2.poison();
  fo::cpu::gemm_o_dispatch(cd);
  report(compare(out2, got_y2, out2.host, tolerance(c.dtype), detail),
         "gemm_o_dispatch " + c.name + " vs oracle", detail);
  // update + dispatch with any symbols equals one dense projection Y = A W^T + b.
  fo::GemmOParams dense = cp;
  dense.symbols = nullptr;
  dense.out = out2.ref(fo::Device::kCPU);
  Buffer scratch(cache_t, act_shape(c.n));
  dense.cache = scratch.ref(fo::Device::kCPU);
  out2.poison();
  fo::cpu::gemm_o_update(dense);
  report(compare(out2, got_y2, out2.host, tolerance(c.dtype), detail),
         "gemm_o update+dispatch " + c.name + " == dense", detail);
}

// Configurations the kernel does not serve must throw flashomni::Error, not launch.
void run_rejections() {
  fo::GemmQParams p;
  Buffer x(fo::DType::kBFloat16, {128, 96}), w(fo::DType::kBFloat16, {96, 96}),
      out(fo::DType::kBFloat16, {128, 96});
  p.x = x.ref(fo::Device::kCUDA);
  p.weight = w.ref(fo::Device::kCUDA);
  p.out = out.ref(fo::Device::kCUDA);
  p.heads = 1;
  p.head_dim = 96;
  bool threw = false;
  try {
    fo::cuda::gemm_q(p, nullptr, 0, nullptr);
  } catch (const fo::Error& e) {
    threw = true;
    std::printf("  (expected) %s\n", e.what());
  }
  report(threw, "gemm_q rejects head_dim 96", "");
  Buffer f32(fo::DType::kFloat32, {128, 96});
  p.x = f32.ref(fo::Device::kCUDA);
  p.head_dim = 96;
  threw = false;
  try {
    fo::cuda::gemm_q(p, nullptr, 0, nullptr);
  } catch (const fo::Error& e) {
    threw = e.status() == fo::Status::kInvalidArgument || e.status() == fo::Status::kUnsupported;
  }
  report(threw, "gemm_q rejects float32 input", "");
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress survives a timeout kill
  // --quick: a few small cases (for compute-sanitizer, which runs kernels ~100x slower).
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("no CUDA device: 0 passed, 0 failed\n");
    return 0;
  }
  std::mt19937 rng(20251123);
  const auto bf = fo::DType::kBFloat16, hf = fo::DType::kFloat16;
  std::vector<QCase> qcases = {
      {"dense bf16 hd128", bf, 1, 4, 128, 128, 0, 256, 512, 1.0, false, true},
      {"dense fp16 hd64 tail", hf, 1, 6, 64, 128, 0, 300, 384, 1.0, false, true},
      {"sparse0.5 bf16 hd128 tail", bf, 1, 8, 128, 128, 0, 333, 512, 0.5},
      {"sparse0.3 fp16 hd128 nobias", hf, 1, 6, 128, 128, 0, 384, 256, 0.3, true, false},
      {"sparse0.5 bf16 hd64", bf, 1, 10, 64, 128, 0, 256, 320, 0.5},
      {"sparse0.7 bf16 row_offset64", bf, 1, 4, 128, 128, 64, 300, 256, 0.7},
      {"sparse0.8 bf16 hd64 row_offset32", bf, 1, 6, 64, 128, 32, 333, 384, 0.8},
      {"sparse0.8 fp16 row_offset96 batch2", hf, 2, 4, 128, 128, 96, 250, 256, 0.8, true, true,
       true},
      {"sparse0.5 bf16 row_offset512", bf, 1, 4, 128, 128, 512, 256, 256, 0.5},
      {"sparse0.5 bf16 block256", bf, 1, 4, 128, 256, 128, 450, 256, 0.5},
      {"sparse0.5 fp16 batch3", hf, 3, 4, 128, 128, 0, 200, 256, 0.5, true, true, true},
      {"all cached", bf, 1, 4, 128, 128, 0, 256, 256, 0.0},
      {"all active", bf, 1, 4, 128, 128, 0, 256, 256, 1.0},
      {"k tail 200", bf, 1, 4, 128, 128, 0, 256, 200, 0.6},
      // The real projection depth (K = 3072, 48 k-blocks), fewer and more items than SMs.
      {"sparse0.4 bf16 K3072", bf, 1, 24, 128, 128, 0, 1000, 3072, 0.4},
      {"sparse0.1 fp16 hd64 K3072", hf, 1, 24, 64, 128, 0, 700, 3072, 0.1},
      {"dense bf16 M1024 K3072", bf, 1, 24, 128, 128, 0, 1024, 3072, 1.0, false, true},
      {"dense bf16 M3072 K1024", bf, 1, 24, 128, 128, 0, 3072, 1024, 1.0, false, true},
      {"sparse0.9 bf16 M3000 K1024", bf, 1, 24, 128, 128, 0, 3000, 1024, 0.9},
      // A last round split in halves after whole rounds (last_round_split): dense 144 groups of 4
      // heads (132 + 12), sparse ~140 whole groups of 2 and a few partial ones.
      {"dense fp16 hd64 M3000 K512 split", hf, 1, 24, 64, 128, 0, 3000, 512, 1.0, false, true},
      {"sparse0.5 bf16 M3000 K512 split", bf, 1, 24, 128, 128, 0, 3000, 512, 0.5},
      // Dense lists in a cluster launch whose last round would run as halves, which the pair K
      // split replaces by default (q_pair_split; case 19 above too: 8 k-blocks, head dim 64):
      // 144 groups of 2 heads at K = 3072 (12 tiles in 2 x 24 k-blocks), and two batch entries with
      // a row offset, a row tail and a K tail (268 groups: 4 split tiles of 2 x 3 k-blocks).
      {"dense bf16 M1536 K3072 pair split", bf, 1, 24, 128, 128, 0, 1536, 3072, 1.0, false, true},
      {"dense bf16 batch2 row_offset32 M8500 K376 pair split", bf, 2, 4, 128, 128, 32, 8500, 376,
       1.0, false, true, true},
      // Tall items (plan_q_paired): 3 heads all active leave head 2 as every row tile's partial
      // group, paired across row tiles. 97 row tiles: 97 whole + 48 tall = 145 items, so the
      // last 13 tall items run as their one-head halves (last_round_split on 132 SMs) and one
      // one-head item is left; a row offset of 32 with two batch entries of 5 row tiles each
      // pairs across the entries and stores the first row tile's negative rows directly.
      {"all-active heads3 bf16 M12388 K256 tall halves", bf, 1, 3, 128, 128, 0, 12388, 256, 1.0},
      {"all-active heads3 fp16 batch2 row_offset32 tall", hf, 2, 3, 128, 128, 32, 600, 256, 1.0,
       true, true, true},
      {"sparse0.25 bf16 M4000 K512 tall", bf, 1, 24, 128, 128, 0, 4000, 512, 0.25},
      // K >= 8192 and M >= 8192: the 3-stage ring with the one-pass epilogue (launcher rule).
      {"sparse0.5 bf16 M8200 K8192 3-stage", bf, 1, 2, 128, 128, 0, 8200, 8192, 0.5},
      {"sparse0.3 fp16 hd64 M8333 K8256 3-stage", hf, 1, 4, 64, 128, 0, 8333, 8256, 0.3},
      {"sparse0.1 bf16 M8192 K8192 3-stage", bf, 1, 1, 128, 128, 0, 8192, 8192, 0.1},
      // Fewer tiles than SMs and K >= 5120: the last-round K split (16 dense tiles in 2 parts of
      // 48 k-blocks, the other 2 units of each idle; two batch entries with a row offset in 3
      // parts; groups of one 128-column head). The 3-stage cases above split too.
      {"dense fp16 M512 K6144 K-split", hf, 1, 8, 128, 128, 0, 512, 6144, 1.0, false, true},
      {"sparse0.6 fp16 batch2 row_offset96 K8192 K-split", hf, 2, 6, 128, 128, 96, 300, 8192, 0.6,
       true, true, true},
      {"sparse0.5 bf16 heads3 M700 K5120 K-split", bf, 1, 3, 128, 128, 0, 700, 5120, 0.5},
  };
  if (quick) {
    qcases = {qcases[0], qcases[2], qcases[6], qcases[19], qcases[24], qcases[28], qcases.back()};
  }
  for (const auto& c : qcases) run_q(c, rng);
  std::vector<OCase> ocases = {
      {"dense bf16", bf, 1, 4, 128, 128, 0, 256, 0, 256, 1.0, false},
      {"sparse0.5 bf16 fp32cache", bf, 1, 8, 128, 128, 0, 300, 0, 512, 0.5},
      {"sparse0.5 bf16 bf16cache", bf, 1, 8, 128, 128, 0, 300, 0, 512, 0.5, true, true, false,
       false},
      {"sparse0.3 fp16 extra200 n320", hf, 1, 6, 128, 128, 0, 256, 200, 320, 0.3},
      // A 16-bit cache with a partial last column tile (328 = 256 + 72: two staged boxes, the
      // second clipped by TMA; the other two neither loaded nor stored).
      {"sparse0.3 bf16 extra200 n328 bf16cache", bf, 1, 6, 128, 128, 0, 300, 200, 328, 0.3, true,
       true, false, false},
      {"sparse0.5 bf16 hd64 nobias", bf, 1, 8, 64, 128, 0, 256, 0, 256, 0.5, true, false},
      {"sparse0.8 bf16 row_offset64", bf, 1, 4, 128, 128, 64, 300, 64, 256, 0.8},
      {"sparse0.8 bf16 hd64 row_offset32 bf16cache", bf, 1, 6, 64, 128, 32, 333, 0, 256, 0.8, true,
       true, false, false},
      {"sparse0.5 fp16 batch2 fp16cache", hf, 2, 4, 128, 128, 0, 200, 0, 256, 0.5, true, true, true,
       false},
      {"all cached", bf, 1, 4, 128, 128, 0, 256, 128, 256, 0.0},
      // No active head and no extra column: dispatch's Y is the staged 16-bit C alone.
      {"all cached bf16cache no extra", bf, 1, 4, 128, 128, 0, 256, 0, 256, 0.0, true, true, false,
       false},
      {"all active", bf, 1, 4, 128, 128, 0, 256, 0, 256, 1.0},
      {"block256", bf, 1, 4, 128, 256, 0, 512, 0, 256, 0.5},
      // K = 3072 (24 heads): row tiles of very different costs.
      {"sparse0.5 bf16 K3072 N3072", bf, 1, 24, 128, 128, 0, 1000, 0, 3072, 0.5},
      {"sparse0.2 fp16 K3072 extra256 bf16cache", hf, 1, 24, 128, 128, 0, 600, 256, 1024, 0.2, true,
       true, false, false},
      {"dense bf16 M3072 N3072 K3072", bf, 1, 24, 128, 128, 0, 3072, 0, 3072, 1.0, false},
      // Sparse tile lists longer than the grid whose last round runs as 128-column halves
      // (item_list: 288 = 2 x 132 + 24, 134 = 132 + 2 with a partial last column tile, 144 =
      // 132 + 12 over two batch entries).
      {"sparse0.5 bf16 M3072 N3072 K3072 halves", bf, 1, 24, 128, 128, 0, 3072, 0, 3072, 0.5},
      {"sparse0.4 bf16 M8576 n320 extra64 halves", bf, 1, 4, 128, 128, 0, 8576, 64, 320, 0.4},
      {"sparse0.5 bf16 M3072 N3072 K3072 bf16cache halves", bf, 1, 24, 128, 128, 0, 3072, 0, 3072,
       0.5, true, true, false, false},
      {"sparse0.5 fp16 batch2 M2200 N1024 fp16cache halves", hf, 2, 8, 128, 128, 0, 2200, 0, 1024,
       0.5, true, true, true, false},
      // 16 + 112 k-blocks over >= 8192 rows: the 3-stage ring, fp32 and fp16 caches through
      // the one-pass epilogue.
      {"sparse0.5 bf16 M8200 K1024 extra7168 3-stage", bf, 1, 8, 128, 128, 0, 8200, 7168, 192, 0.5},
      {"sparse0.4 fp16 batch2 M4200 extra7168 fp16cache 3-stage", hf, 2, 8, 128, 128, 0, 4200, 7168,
       128, 0.4, true, true, true, false},
      // Dispatch lists shorter than the grid with K >= 5120: the last-round K split, on the
      // register path (fp32 cache, a 16-bit cache under a row offset) and the staged 16-bit cache.
      {"sparse0.9 bf16 M1000 N1024 K3072 extra3072 fp32cache K-split", bf, 1, 24, 128, 128, 0, 1000,
       3072, 1024, 0.9},
      {"sparse0.8 bf16 M1000 N1000 K3072 extra4096 bf16cache K-split", bf, 1, 24, 128, 128, 0, 1000,
       4096, 1000, 0.8, true, true, false, false},
      {"sparse0.7 fp16 batch2 row_offset64 N512 K2048 extra4096 fp16cache K-split", hf, 2, 16, 128,
       128, 64, 500, 4096, 512, 0.7, true, false, true, false},
  };
  if (quick) ocases = {ocases[2], ocases[3], ocases[4], ocases[7], ocases[ocases.size() - 2]};
  for (const auto& c : ocases) run_o(c, rng);
  run_rejections();
  return gpu_check::finish();
}
