// FlashOmni GPU check program: cuda::run_policy against the CPU run_policy (exact equality of every
// Sq / Skv word, padding words included, and of every per-(b, h) density field) on structured
// random inputs — uniform and varlen (device cu_seqlens), GQA, text first / last / per request /
// on the device / none, partial blocks, block_q != block_kv, every PolicyConfig option, all four
// dtypes, strided (scalar-load) inputs, the FLUX / HunyuanVideo sizes, the output-change query
// score (dtype mixes, dv != d, no previous output), CUDA-graph capture and
// replay on new data — and cuda::forecast against the CPU forecast (bit-exact, every dtype mix,
// vector and scalar paths). Then times the policy at N = 4608, 16896 and 33792 (H = 24, d = 128,
// bf16) and the forecast of a GEMM-O cache with CUDA events. Prints "N passed, M failed"; exits 1
// on failure.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "flashomni/numeric.h"
#include "flashomni/policy.h"
#include "flashomni/policy_cuda.h"
#include "flashomni/symbols_stats.h"
#include "gpu/check_util.h"
#include "gpu/policy_check_cases.h"

namespace fo = flashomni;
namespace gpu_check = flashomni::gpu_check;

namespace {

using gpu_check::report;
using Case = gpu_check::PolicyCase;

struct Device {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Device(size_t n) : bytes(n) { CUDA_OK(cudaMalloc(&ptr, std::max<size_t>(n, 256))); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device() { cudaFree(ptr); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
  void upload(const void* host, size_t n) {
    CUDA_OK(cudaMemcpy(ptr, host, n, cudaMemcpyHostToDevice));
  }
  void fill(uint8_t byte) { CUDA_OK(cudaMemset(ptr, byte, std::max<size_t>(bytes, 256))); }
  template <typename T>
  std::vector<T> download(size_t count) const {
    std::vector<T> h(count);
    CUDA_OK(cudaMemcpy(h.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

// xorshift64*: fast enough for the 50 M values of the N = 33792 inputs.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  float uniform() { return static_cast<float>(next() >> 40) / 16777216.0f; }  // [0, 1)
  float normal() {  // triangular, unit variance: plenty for spread-out pooled logits
    return (uniform() + uniform() - 1.0f) * 2.449f;
  }
};

void store(uint8_t* dst, fo::DType t, int64_t i, double v) {
  fo::store_from_double(dst, t, i, v);
}

// Packed tokens [total, heads, d] with a token row stride of heads * d + pad elements; values are
// noise plus a per-16-token offset so that pooled logits spread and decisions vary.
std::vector<uint8_t> make_tokens(Rng& rng, int64_t total, int32_t heads, int32_t d, fo::DType t,
                                 int32_t pad) {
  const int64_t row = static_cast<int64_t>(heads) * d + pad;
  std::vector<uint8_t> out(static_cast<size_t>(total * row) * fo::dtype_size(t), 0);
  std::vector<float> offset(static_cast<size_t>(heads) * d);
  for (int64_t tok = 0; tok < total; ++tok) {
    if (tok % 16 == 0) {
      for (float& o : offset) o = 2.0f * rng.normal();
    }
    for (int64_t e = 0; e < static_cast<int64_t>(heads) * d; ++e) {
      store(out.data(), t, tok * row + e, rng.normal() + offset[e]);
    }
  }
  return out;
}

fo::TensorRef tokens_ref(void* data, const Case& c, bool varlen, int64_t batch, int64_t n,
                         int32_t heads, fo::Device dev, fo::DType dtype, int32_t dim) {
  fo::TensorRef r;
  r.data = data;
  r.dtype = dtype;
  r.device = dev;
  const int64_t row = static_cast<int64_t>(heads) * dim + c.pad;
  if (varlen) {
    r.ndim = 3;
    const int64_t shape[3] = {n, heads, dim}, stride[3] = {row, dim, 1};
    std::copy(shape, shape + 3, r.shape);
    std::copy(stride, stride + 3, r.stride);
  } else {
    r.ndim = 4;
    const int64_t shape[4] = {batch, n, heads, dim};
    const int64_t stride[4] = {n * row, row, dim, 1};
    std::copy(shape, shape + 4, r.shape);
    std::copy(stride, stride + 4, r.stride);
  }
  return r;
}

fo::TensorRef tokens_ref(void* data, const Case& c, bool varlen, int64_t batch, int64_t n,
                         int32_t heads, fo::Device dev) {
  return tokens_ref(data, c, varlen, batch, n, heads, dev, c.dtype, c.head_dim);
}

// Attention outputs of two update steps [total, heads, dv] (row pad as q): prev is noise, now
// adds a change whose size varies per 64 tokens — 0 (exact ties, cached first), 1%, up to 100%.
void make_outputs(Rng& rng, int64_t total, int32_t heads, int32_t dv, const Case& c,
                  std::vector<uint8_t>& now, std::vector<uint8_t>& prev) {
  const int64_t row = static_cast<int64_t>(heads) * dv + c.pad;
  now.assign(static_cast<size_t>(total * row) * fo::dtype_size(c.now_dtype), 0);
  prev.assign(static_cast<size_t>(total * row) * fo::dtype_size(c.prev_dtype), 0);
  std::vector<double> scale(heads);
  for (int64_t tok = 0; tok < total; ++tok) {
    if (tok % 64 == 0) {
      for (double& x : scale) {
        const float u = rng.uniform();
        x = u < 0.25f ? 0.0 : (u < 0.4f ? 0.01 : u * u);
      }
    }
    for (int64_t e = 0; e < static_cast<int64_t>(heads) * dv; ++e) {
      const double v = rng.normal();
      store(prev.data(), c.prev_dtype, tok * row + e, v);
      // An unchanged token stores the same value: equal bits whenever both dtypes are the same.
      const double w = scale[e / dv] == 0.0 ? v : v + scale[e / dv] * rng.normal();
      store(now.data(), c.now_dtype, tok * row + e, w);
    }
  }
}

std::vector<int32_t> offsets(const std::vector<int32_t>& lens) {
  std::vector<int32_t> cu{0};
  for (int32_t l : lens) cu.push_back(cu.back() + l);
  return cu;
}

// Everything one case needs on both sides.
struct Problem {
  Case c;
  std::vector<uint8_t> q_host, k_host;
  std::vector<int32_t> cu_q, cu_kv;
  fo::PolicyParams cpu;
  std::vector<uint8_t> now_host, prev_host;
  std::unique_ptr<Device> q_dev, k_dev, cu_q_dev, cu_kv_dev, text_dev, now_dev, prev_dev;
  fo::PolicyDeviceParams gpu;

  Problem(const Case& cs, uint64_t seed) : c(cs) {
    Rng rng(seed);
    const auto batch = static_cast<int64_t>(c.lens_q.size());
    cu_q = offsets(c.lens_q);
    cu_kv = offsets(c.lens_kv);
    const int64_t tq = cu_q.back(), tk = cu_kv.back();
    q_host = make_tokens(rng, tq, c.heads, c.head_dim, c.dtype, c.pad);
    k_host = make_tokens(rng, tk, c.kv_heads, c.head_dim, c.dtype, c.pad);
    q_dev = std::make_unique<Device>(q_host.size());
    k_dev = std::make_unique<Device>(k_host.size());
    upload();
    const int64_t nq = c.varlen ? tq : c.lens_q[0], nk = c.varlen ? tk : c.lens_kv[0];
    cpu.q = tokens_ref(q_host.data(), c, c.varlen, batch, nq, c.heads, fo::Device::kCPU);
    cpu.k = tokens_ref(k_host.data(), c, c.varlen, batch, nk, c.kv_heads, fo::Device::kCPU);
    cpu.seqlens.batch = static_cast<int32_t>(batch);
    cpu.seqlens.seqlen_q = *std::max_element(c.lens_q.begin(), c.lens_q.end());
    cpu.seqlens.seqlen_kv = *std::max_element(c.lens_kv.begin(), c.lens_kv.end());
    if (c.varlen) {
      cpu.seqlens.cu_seqlens_q = cu_q.data();
      cpu.seqlens.cu_seqlens_kv = cu_kv.data();
    }
    cpu.block_q = c.block_q;
    cpu.block_kv = c.block_kv;
    cpu.text = c.text;
    cpu.step = c.step;
    cpu.config = c.config;

    gpu.q = tokens_ref(q_dev->ptr, c, c.varlen, batch, nq, c.heads, fo::Device::kCUDA);
    gpu.k = tokens_ref(k_dev->ptr, c, c.varlen, batch, nk, c.kv_heads, fo::Device::kCUDA);
    if (c.varlen) {
      cu_q_dev = std::make_unique<Device>(cu_q.size() * 4);
      cu_kv_dev = std::make_unique<Device>(cu_kv.size() * 4);
      cu_q_dev->upload(cu_q.data(), cu_q.size() * 4);
      cu_kv_dev->upload(cu_kv.data(), cu_kv.size() * 4);
      gpu.cu_seqlens_q = fo::make_tensor(cu_q_dev->ptr, fo::DType::kInt32,
                                         {static_cast<int64_t>(cu_q.size())}, fo::Device::kCUDA);
      gpu.cu_seqlens_kv = fo::make_tensor(cu_kv_dev->ptr, fo::DType::kInt32,
                                          {static_cast<int64_t>(cu_kv.size())}, fo::Device::kCUDA);
      gpu.max_seqlen_q = cpu.seqlens.seqlen_q;
      gpu.max_seqlen_kv = cpu.seqlens.seqlen_kv;
    }
    gpu.block_q = c.block_q;
    gpu.block_kv = c.block_kv;
    if (c.device_text && !c.text.empty()) {
      text_dev = std::make_unique<Device>(c.text.size() * sizeof(fo::TextRange));
      text_dev->upload(c.text.data(), c.text.size() * sizeof(fo::TextRange));
      gpu.text_ranges =
          fo::make_tensor(text_dev->ptr, fo::DType::kInt32,
                          {static_cast<int64_t>(c.text.size()), 2}, fo::Device::kCUDA);
    } else {
      gpu.text = c.text;
    }
    gpu.step = c.step;
    gpu.config = c.config;
    if (c.config.query_score == fo::QueryScore::kOutputChange) {
      const int32_t dv = c.out_dim > 0 ? c.out_dim : c.head_dim;
      make_outputs(rng, tq, c.heads, dv, c, now_host, prev_host);
      now_dev = std::make_unique<Device>(now_host.size());
      prev_dev = std::make_unique<Device>(prev_host.size());
      now_dev->upload(now_host.data(), now_host.size());
      prev_dev->upload(prev_host.data(), prev_host.size());
      const auto ref = [&](void* data, fo::Device dev, fo::DType t) {
        return tokens_ref(data, c, c.varlen, batch, nq, c.heads, dev, t, dv);
      };
      cpu.out_now = ref(now_host.data(), fo::Device::kCPU, c.now_dtype);
      gpu.out_now = ref(now_dev->ptr, fo::Device::kCUDA, c.now_dtype);
      if (c.has_prev) {
        cpu.out_prev = ref(prev_host.data(), fo::Device::kCPU, c.prev_dtype);
        gpu.out_prev = ref(prev_dev->ptr, fo::Device::kCUDA, c.prev_dtype);
      }
    }
  }
  void upload() {
    q_dev->upload(q_host.data(), q_host.size());
    k_dev->upload(k_host.data(), k_host.size());
  }
};

// GPU outputs of one call: words and densities, every byte poisoned first.
struct GpuResult {
  fo::SymbolShape shape;
  std::unique_ptr<Device> q_bits, kv_bits, dens, workspace;
  explicit GpuResult(fo::PolicyDeviceParams& p) {
    shape = fo::cuda::policy_symbol_shape(p);
    q_bits = std::make_unique<Device>(shape.q_size() * 4);
    kv_bits = std::make_unique<Device>(shape.kv_size() * 4);
    dens = std::make_unique<Device>(shape.batch * shape.heads * sizeof(fo::SymbolDensity));
    workspace = std::make_unique<Device>(fo::cuda::policy_workspace_size(p));
    q_bits->fill(0xA5);
    kv_bits->fill(0xA5);
    dens->fill(0xA5);
    workspace->fill(0xFF);  // NaN doubles: a read of anything not written first shows up
    p.q_bits = q_bits->as<uint32_t>();
    p.kv_bits = kv_bits->as<uint32_t>();
    p.densities = dens->as<fo::SymbolDensity>();
  }
};

std::string compare(const fo::PolicyResult& want, const fo::SeqLens& seqlens, const GpuResult& g) {
  const fo::SymbolShape& s = g.shape;
  const auto q = g.q_bits->download<uint32_t>(s.q_size());
  const auto kv = g.kv_bits->download<uint32_t>(s.kv_size());
  int64_t bad_q = 0, bad_kv = 0;
  std::string first;
  for (int64_t w = 0; w < s.q_size(); ++w) bad_q += q[w] != want.symbols.q_bits()[w];
  for (int64_t w = 0; w < s.kv_size(); ++w) {
    if (kv[w] == want.symbols.kv_bits()[w]) continue;
    if (bad_kv++ == 0) {
      const int64_t row = w / s.kv_words();
      first = " first kv row (b,h,i)=(" + std::to_string(row / s.q_blocks / s.heads) + "," +
              std::to_string(row / s.q_blocks % s.heads) + "," + std::to_string(row % s.q_blocks) +
              ")";
    }
  }
  const std::vector<fo::SymbolDensity> d = fo::symbol_densities(want.symbols.ref(), seqlens);
  const auto gd = g.dens->download<fo::SymbolDensity>(d.size());
  int64_t bad_d = 0;
  for (size_t e = 0; e < d.size(); ++e) {
    const fo::SymbolDensity &x = d[e], &y = gd[e];  // field by field: padding bytes differ
    bad_d += x.b != y.b || x.h != y.h || x.valid_q_blocks != y.valid_q_blocks ||
             x.valid_kv_blocks != y.valid_kv_blocks || x.active_q_blocks != y.active_q_blocks ||
             x.kept_pairs != y.kept_pairs || x.active_q_tokens != y.active_q_tokens ||
             x.kept_token_pairs != y.kept_token_pairs || x.q_tokens != y.q_tokens ||
             x.kv_tokens != y.kv_tokens || x.query_density != y.query_density ||
             x.query_token_density != y.query_token_density || x.kv_density != y.kv_density ||
             x.pair_density != y.pair_density || x.token_pair_density != y.token_pair_density;
  }
  if (bad_q + bad_kv + bad_d == 0) return "";
  return "mismatched q words " + std::to_string(bad_q) + "/" + std::to_string(s.q_size()) +
         ", kv words " + std::to_string(bad_kv) + "/" + std::to_string(s.kv_size()) +
         ", densities " + std::to_string(bad_d) + first;
}

void check_case(const Case& c, uint64_t seed) {
  Problem pr(c, seed);
  const fo::PolicyResult want = fo::run_policy(pr.cpu);
  GpuResult g(pr.gpu);
  fo::cuda::run_policy(pr.gpu, g.workspace->ptr, g.workspace->bytes, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  const std::string err = compare(want, pr.cpu.seqlens, g);
  char detail[160];
  std::snprintf(detail, sizeof(detail), "(%dx%d blocks, query %.3f, kv %.3f)", g.shape.q_blocks,
                g.shape.kv_blocks, want.density.query.overall, want.density.kv.overall);
  report(err.empty(), "policy " + c.name, err.empty() ? detail : err);
}

// Captured once in a CUDA graph (global capture mode rejects any synchronising call), replayed
// on two different inputs written into the same buffers.
void check_graph() {
  Case c;
  c.name = "graph";
  c.heads = 8;
  c.kv_heads = 2;
  c.lens_q = c.lens_kv = {2000, 2000};
  c.text = {fo::text_last(2000, 300)};
  c.step = 40;
  Problem pr(c, 77);
  GpuResult g(pr.gpu);
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  cudaGraph_t graph;
  CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  fo::cuda::run_policy(pr.gpu, g.workspace->ptr, g.workspace->bytes, stream);
  CUDA_OK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  bool ok = true;
  std::string err;
  for (uint64_t seed : {78ull, 79ull}) {
    Problem fresh(c, seed);  // new values, copied into the captured buffers
    pr.q_host = fresh.q_host;
    pr.k_host = fresh.k_host;
    pr.upload();
    CUDA_OK(cudaGraphLaunch(exec, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    const std::string e = compare(fo::run_policy(pr.cpu), pr.cpu.seqlens, g);
    if (!e.empty()) ok = false, err = e;
  }
  CUDA_OK(cudaGraphExecDestroy(exec));
  CUDA_OK(cudaGraphDestroy(graph));
  CUDA_OK(cudaStreamDestroy(stream));
  report(ok, "policy graph capture + 2 replays on new data", err);
}

void check_rejects() {
  Case c;
  c.lens_q = {512};
  c.lens_kv = {384};
  Problem pr(c, 5);
  bool threw = false;
  try {
    fo::cuda::policy_workspace_size(pr.gpu);  // cache_queries with Nq != Nkv
  } catch (const fo::Error&) {
    threw = true;
  }
  pr.gpu.config.cache_queries = false;
  GpuResult g(pr.gpu);
  bool small_ws = false;
  try {
    fo::cuda::run_policy(pr.gpu, g.workspace->ptr, g.workspace->bytes - 256, nullptr);
  } catch (const fo::Error&) {
    small_ws = true;
  }
  bool no_out_now = false;
  pr.gpu.k = pr.gpu.q;  // joint attention: the missing output is the only fault
  pr.gpu.config.cache_queries = true;
  pr.gpu.config.query_score = fo::QueryScore::kOutputChange;
  try {
    fo::cuda::policy_workspace_size(pr.gpu);
  } catch (const fo::Error& e) {
    no_out_now = std::string(e.what()).find("out_now") != std::string::npos;
  }
  report(threw && small_ws && no_out_now,
         "policy rejects cross-attention caching, a short workspace and kOutputChange without "
         "out_now",
         "");
}

// ---- forecast ---------------------------------------------------------------------------------

void check_forecast(int64_t size, int32_t points, int32_t order, fo::DType h0, fo::DType out_t,
                    int64_t offset) {
  Rng rng(static_cast<uint64_t>(size * 31 + points * 7 + order));
  const fo::DType kinds[3] = {h0, fo::DType::kFloat32, fo::DType::kBFloat16};
  const int32_t steps_all[3] = {7, 12, 17};
  fo::ForecastParams cpu, gpu;
  std::vector<std::vector<uint8_t>> hosts;
  std::vector<std::unique_ptr<Device>> devs;
  for (int32_t p = 0; p < points; ++p) {
    const fo::DType t = kinds[p];
    const size_t e = fo::dtype_size(t);
    hosts.emplace_back((size + offset) * e);
    for (int64_t i = 0; i < size; ++i) store(hosts.back().data(), t, offset + i, rng.normal());
    devs.push_back(std::make_unique<Device>(hosts.back().size()));
    devs.back()->upload(hosts.back().data(), hosts.back().size());
    cpu.history.push_back(fo::make_tensor(hosts.back().data() + offset * e, t, {size}));
    gpu.history.push_back(
        fo::make_tensor(devs.back()->as<uint8_t>() + offset * e, t, {size}, fo::Device::kCUDA));
    cpu.steps.push_back(steps_all[3 - points + p]);
  }
  gpu.steps = cpu.steps;
  cpu.order = gpu.order = order;
  cpu.target_step = gpu.target_step = 19;
  const size_t oe = fo::dtype_size(out_t);
  std::vector<uint8_t> want((size + offset) * oe);
  cpu.out = fo::make_tensor(want.data() + offset * oe, out_t, {size});
  fo::forecast(cpu);
  Device out((size + offset) * oe);
  gpu.out = fo::make_tensor(out.as<uint8_t>() + offset * oe, out_t, {size}, fo::Device::kCUDA);
  fo::cuda::forecast(gpu, nullptr);
  CUDA_OK(cudaDeviceSynchronize());
  const auto got = out.download<uint8_t>(want.size());
  const bool ok = std::memcmp(got.data() + offset * oe, want.data() + offset * oe, size * oe) == 0;
  char name[160];
  std::snprintf(name, sizeof(name), "forecast size %lld points %d order %d %s -> %s%s",
                static_cast<long long>(size), points, order, fo::dtype_name(h0),
                fo::dtype_name(out_t), offset ? " (unaligned)" : "");
  report(ok, name, ok ? "bit-exact" : "differs from the CPU forecast");
}

// ---- timing ------------------------------------------------------------------------------------

template <typename F>
float time_ms(F&& call, int iters) {
  for (int i = 0; i < 3; ++i) call();
  cudaEvent_t a, b;
  CUDA_OK(cudaEventCreate(&a));
  CUDA_OK(cudaEventCreate(&b));
  CUDA_OK(cudaEventRecord(a));
  for (int i = 0; i < iters; ++i) call();
  CUDA_OK(cudaEventRecord(b));
  CUDA_OK(cudaEventSynchronize(b));
  float ms = 0;
  CUDA_OK(cudaEventElapsedTime(&ms, a, b));
  CUDA_OK(cudaEventDestroy(a));
  CUDA_OK(cudaEventDestroy(b));
  return ms / iters;
}

void bench() {
  std::printf(
      "\n-- timing (CUDA events, mean of 20 after 3 warm-ups; B = 1, H = 24, d = 128, bf16, "
      "step 20 of 50) --\n");
  for (int32_t n : {4608, 16896, 33792}) {
    Problem pr(gpu_check::bench_case(n, 512, true), 1000 + n);
    GpuResult g(pr.gpu);
    const float ms = time_ms(
        [&] { fo::cuda::run_policy(pr.gpu, g.workspace->ptr, g.workspace->bytes, nullptr); }, 20);
    const double read_gb = 2.0 * n * 24 * 128 * 2 / 1e9;
    // Dense attention at the cuDNN rates measured in baselines.md (601 / 687 / 629 TFLOP/s).
    const double rate = n == 4608 ? 601 : n == 16896 ? 687 : 629;
    const double attn_ms = 4.0 * n * n * 128.0 * 24 / (rate * 1e12) * 1e3;
    std::printf(
        "policy N=%d: %.3f ms (Q+K %.2f GB read once = %.0f GB/s if all of it); dense "
        "attention at cuDNN rate %.2f ms -> policy = %.2f%% of it\n",
        n, ms, read_gb, read_gb / (ms * 1e-3), attn_ms, 100.0 * ms / attn_ms);
  }
  for (fo::DType t : {fo::DType::kFloat32, fo::DType::kBFloat16}) {
    const int64_t elem = t == fo::DType::kFloat32 ? 4 : 2;
    for (int32_t n : {16896, 33792}) {
      const int64_t size = static_cast<int64_t>(n) * 3072;  // GEMM-O cache C [N, H * d]
      std::vector<std::unique_ptr<Device>> h;
      fo::ForecastParams f;
      for (int p = 0; p < 3; ++p) {
        h.push_back(std::make_unique<Device>(size * elem));
        h.back()->fill(0);
        f.history.push_back(fo::make_tensor(h.back()->ptr, t, {size}, fo::Device::kCUDA));
      }
      f.steps = {7, 12, 17};
      f.target_step = 19;
      Device out(size * elem);
      f.out = fo::make_tensor(out.ptr, t, {size}, fo::Device::kCUDA);
      const float ms = time_ms([&] { fo::cuda::forecast(f, nullptr); }, 20);
      std::printf("forecast order 2, %s [%d, 3072]: %.3f ms (%.0f GB/s moved)\n", fo::dtype_name(t),
                  n, ms, 4.0 * size * elem / (ms * 1e-3) / 1e9);
    }
  }
}

}  // namespace

// Flags: --probe (print the device and exit), --small (skip the N >= 16896 cases: for the
// sanitizers), --no-bench (skip the timing).
int main(int argc, char** argv) {
  bool timing = true, small = false;
  for (int a = 1; a < argc; ++a) {
    const std::string flag = argv[a];
    timing = timing && flag != "--no-bench" && flag != "--probe";
    small = small || flag == "--small";
  }
  cudaDeviceProp prop{};
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount);
  if (argc > 1 && std::string(argv[1]) == "--probe") return 0;
  uint64_t seed = 1;
  for (const Case& c : gpu_check::policy_cases()) {
    if (!small || c.lens_q[0] < 16896) check_case(c, seed);
    ++seed;
  }
  check_graph();
  check_rejects();
  for (fo::DType h0 : {fo::DType::kFloat32, fo::DType::kBFloat16, fo::DType::kFloat16}) {
    for (fo::DType out_t : {fo::DType::kFloat32, fo::DType::kBFloat16, fo::DType::kFloat16}) {
      check_forecast(4099, 3, 2, h0, out_t, 0);
    }
  }
  check_forecast(1 << 20, 2, 2, fo::DType::kBFloat16, fo::DType::kBFloat16, 0);
  check_forecast(1000, 3, 1, fo::DType::kFloat16, fo::DType::kFloat32, 1);
  check_forecast(1000, 1, 0, fo::DType::kFloat32, fo::DType::kFloat32, 3);
  if (timing) bench();
  std::printf("\n");
  return gpu_check::finish();
}
