// FlashOmni demo (apps layer): one DiT joint-attention layer through S diffusion steps with
// Update–Dispatch (engine.h) and the symbol policy (policy.h), on synthetic Q/K/V with the
// structure of a real layer; every step is checked against dense attention at that step.
//
// Synthetic layer: G x G image tokens on a grid plus T text tokens (first as in FLUX or last as
// in HunyuanVideo). Per head h, Q and K of an image token are alpha * phi_h(position), phi_h a
// random-Fourier-feature map whose inner products approximate exp(-|p - p'|^2 / (2 l_h^2)), with
// l_h from 1.5 to 6 grid cells across heads, so nearby tokens attend to each other and heads
// differ. Text tokens are tied to three "subject" positions: image tokens near a subject and
// its text attend to each other, the background barely sees the text. Over the steps a noise
// component decays (sigma from 1 to 0) and a slow rotation drifts Q/K/V, like a denoising
// trajectory. The attention backend is chosen in one place (make_backend): the CPU oracle, or
// cuda::sparse_attention on a Hopper GPU (demo_cuda_backend.h; the engine still writes the forecast
// and runs the policy on the host, so each GPU call copies its tensors in and out).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "flashomni/attention.h"
#include "flashomni/engine.h"
#include "flashomni/numeric.h"
#ifdef FLASHOMNI_WITH_CUDA
#include "demo_cuda_backend.h"
#endif

namespace {

using namespace flashomni;

enum class BackendChoice { kAuto, kCpu, kCuda };
// kDefault: fp32 on the CPU, bf16 on the GPU (the kernels store bf16/fp16 only).
enum class Storage { kDefault, kBf16, kFp32 };

struct Options {
  int steps = 50, size = 32, text = 128, heads = 4, head_dim = 64, block = 128;
  uint32_t seed = 1;
  bool text_last = false, reference = true;
  Storage storage = Storage::kDefault;
  BackendChoice backend = BackendChoice::kAuto;
  EngineConfig engine;
};

void usage() {
  std::printf(
      "usage: flashomni_demo [options]\n"
      "  --steps S         diffusion steps (50)\n"
      "  --size G          image grid G x G tokens (32 -> 1024 image tokens)\n"
      "  --tokens T        text tokens (128)\n"
      "  --heads H         attention heads (4)\n"
      "  --head-dim D      head dim (64)\n"
      "  --block B         symbol block size, query and key (128)\n"
      "  --seed N          random seed (1)\n"
      "  --text-first      text tokens before the image (FLUX; default)\n"
      "  --text-last       text tokens after the image (HunyuanVideo)\n"
      "  --backend B       auto, cpu or cuda (auto: cuda when the library has CUDA, a Hopper\n"
      "                    GPU is present and the options fit the kernel, else cpu)\n"
      "  --bf16 / --fp32   Q/K/V/out storage (default fp32 on cpu, bf16 on cuda)\n"
      "  --warmup W --interval N --order K --reuse-below X   schedule/forecast (8, 5, 2, 0.3)\n"
      "  --tau-q X --tau-kv X                                 policy thresholds (0.5, 0.15)\n"
      "  --keep-diagonal --keep-text-kv                       policy options (off)\n"
      "  --query-score S   query caching by text-image attention or output-change (text-image)\n"
      "  --no-reference    skip the dense reference (no error column, faster)\n");
}

Options parse(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> const char* {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "option %s needs a value\n", argv[i]);
      std::exit(2);
    }
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps")
      o.steps = std::atoi(value(i));
    else if (a == "--size")
      o.size = std::atoi(value(i));
    else if (a == "--tokens")
      o.text = std::atoi(value(i));
    else if (a == "--heads")
      o.heads = std::atoi(value(i));
    else if (a == "--head-dim")
      o.head_dim = std::atoi(value(i));
    else if (a == "--block")
      o.block = std::atoi(value(i));
    else if (a == "--seed")
      o.seed = static_cast<uint32_t>(std::strtoul(value(i), nullptr, 10));
    else if (a == "--text-first")
      o.text_last = false;
    else if (a == "--text-last")
      o.text_last = true;
    else if (a == "--bf16")
      o.storage = Storage::kBf16;
    else if (a == "--fp32")
      o.storage = Storage::kFp32;
    else if (a == "--backend") {
      const std::string b = value(i);
      if (b == "auto" || b == "cpu" || b == "cuda") {
        o.backend = b == "cpu" ? BackendChoice::kCpu
                               : (b == "cuda" ? BackendChoice::kCuda : BackendChoice::kAuto);
      } else {
        std::fprintf(stderr, "--backend expects auto, cpu or cuda, got %s\n", b.c_str());
        std::exit(2);
      }
    } else if (a == "--warmup")
      o.engine.schedule.warmup = std::atoi(value(i));
    else if (a == "--interval")
      o.engine.schedule.interval = std::atoi(value(i));
    else if (a == "--order")
      o.engine.taylor_order = std::atoi(value(i));
    else if (a == "--reuse-below")
      o.engine.reuse_below = std::atof(value(i));
    else if (a == "--tau-q")
      o.engine.policy.tau_q = std::atof(value(i));
    else if (a == "--tau-kv")
      o.engine.policy.tau_kv = std::atof(value(i));
    else if (a == "--keep-diagonal")
      o.engine.policy.keep_diagonal = true;
    else if (a == "--keep-text-kv")
      o.engine.policy.keep_text_kv = true;
    else if (a == "--query-score") {
      const std::string q = value(i);
      if (q != "text-image" && q != "output-change") {
        std::fprintf(stderr, "--query-score expects text-image or output-change, got %s\n",
                     q.c_str());
        std::exit(2);
      }
      o.engine.policy.query_score =
          q == "text-image" ? QueryScore::kTextImage : QueryScore::kOutputChange;
    } else if (a == "--no-reference")
      o.reference = false;
    else if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      usage();
      std::exit(2);
    }
  }
  if (o.steps < 1 || o.size < 1 || o.text < 0 || o.heads < 1 || o.head_dim < 1) {
    std::fprintf(stderr, "--steps, --size, --heads, --head-dim must be >= 1 and --tokens >= 0\n");
    std::exit(2);
  }
  o.engine.schedule.num_steps = o.steps;
  o.engine.block_q = o.engine.block_kv = o.block;
  return o;
}

// Why the CUDA backend cannot run these options here; "" when it can.
std::string cuda_unavailable(const Options& o) {
#ifdef FLASHOMNI_WITH_CUDA
  const std::string device = demo::cuda_unavailable_reason();
  if (!device.empty()) return device;
  if (o.storage == Storage::kFp32) return "--fp32 asked, the CUDA kernels store bf16/fp16 only";
  if (o.head_dim != 64 && o.head_dim != 128) {
    return "--head-dim " + std::to_string(o.head_dim) + ", the CUDA kernel has 64 and 128";
  }
  if (o.block != 128) {
    return "--block " + std::to_string(o.block) + ", the CUDA kernel's tile is 128";
  }
  return "";
#else
  (void)o;
  return "the library was built without CUDA";
#endif
}

struct Backend {
  AttentionBackend call;
  DType dtype = DType::kFloat32;
  std::string description;  // the header's "backend:" line
  bool gpu = false;
  // GPU only: the GPU time of the last call, and a dense call's on the same inputs (ms).
  std::function<double()> last_gpu_ms;
  std::function<double(const AttentionParams&)> gpu_dense_ms;
};

// The one place a backend is chosen. A GPU engine with a device-side forecast and policy (no
// per-step copies) would plug in here too.
Backend make_backend(const Options& o, int64_t tokens) {
  Backend b;
  const std::string why =
      o.backend == BackendChoice::kCpu ? "--backend cpu asked" : cuda_unavailable(o);
  if (!why.empty()) {
    FLASHOMNI_CHECK_ARG(o.backend != BackendChoice::kCuda, "--backend",
                        "cuda is not available: ", why);
    b.call = cpu_attention_backend();
    b.dtype = o.storage == Storage::kBf16 ? DType::kBFloat16 : DType::kFloat32;
    b.description = "cpu (the oracle: double accumulation; " +
                    std::string(o.backend == BackendChoice::kAuto ? "auto: " : "") + why + ")";
    return b;
  }
#ifdef FLASHOMNI_WITH_CUDA
  b.dtype = DType::kBFloat16;
  const SeqLens lens{.batch = 1,
                     .seqlen_q = static_cast<int32_t>(tokens),
                     .seqlen_kv = static_cast<int32_t>(tokens)};
  const auto gpu = std::make_shared<demo::CudaAttention>(
      tokens, o.heads, o.head_dim, b.dtype, symbol_shape_for(lens, o.heads, o.block, o.block));
  b.gpu = true;
  b.call = [gpu](const AttentionParams& p) { gpu->run(p); };
  b.last_gpu_ms = [gpu] { return gpu->last_kernel_ms(); };
  b.gpu_dense_ms = [gpu](const AttentionParams& p) { return gpu->dense_kernel_ms(p); };
  b.description = "cuda, " + demo::cuda_device_description() +
                  (o.storage == Storage::kDefault
                       ? "; bf16 storage (the kernels store bf16/fp16; --backend cpu runs fp32)"
                       : "") +
                  "; each call copies q/k/v, the forecast-filled out and the symbols to the "
                  "GPU and out back; rel_err against the CPU oracle on the same bf16 inputs";
#else
  (void)tokens;
#endif
  return b;
}

// Q, K or V of every step: clean + sigma(s) * noise + drift(s), each [N, H, d] in fp32, tokens
// in logical order (image, then text); Buffer::set places them (text first or last).
struct Trajectory {
  std::vector<float> clean, noise, drift_a, drift_b;
};

struct Synthetic {
  int n = 0, n_img = 0, heads = 0, d = 0, steps = 0;
  Trajectory q, k, v;

  Synthetic(const Options& o) : heads(o.heads), d(o.head_dim), steps(o.steps) {
    const int g = o.size;
    n_img = g * g;
    n = n_img + o.text;
    std::mt19937 rng(o.seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    const size_t numel = static_cast<size_t>(n) * heads * d;
    for (Trajectory* t : {&q, &k, &v}) {
      t->clean.assign(numel, 0.0f);
      for (std::vector<float>* x : {&t->noise, &t->drift_a, &t->drift_b}) {
        x->resize(numel);
        for (float& e : *x) e = normal(rng);
      }
    }
    // Three subjects the text talks about.
    float subject[3][2];
    for (auto& s : subject) s[0] = uniform(rng) * g, s[1] = uniform(rng) * g;
    // alpha^2 / sqrt(d) = 8: logit 8 between a token and itself, ~0 far away.
    const float alpha = std::sqrt(8.0f * std::sqrt(static_cast<float>(d)));
    const float two_pi = 6.2831853f, rff = std::sqrt(2.0f / d);
    for (int h = 0; h < heads; ++h) {
      const float ell = 1.5f * std::pow(4.0f, heads > 1 ? static_cast<float>(h) / (heads - 1) : 0);
      std::vector<float> wx(d), wy(d), ph(d), vx(d), vy(d), vp(d);
      for (int c = 0; c < d; ++c) {
        wx[c] = normal(rng) / ell, wy[c] = normal(rng) / ell, ph[c] = two_pi * uniform(rng);
        // V: smooth fields over the grid (length scale 4 cells).
        vx[c] = normal(rng) / 4.0f, vy[c] = normal(rng) / 4.0f, vp[c] = two_pi * uniform(rng);
      }
      auto feature = [&](float x, float y, int c) {
        return rff * std::cos(wx[c] * x + wy[c] * y + ph[c]);
      };
      for (int p = 0; p < n_img; ++p) {
        const float x = static_cast<float>(p % g), y = static_cast<float>(p / g);
        const size_t base = (static_cast<size_t>(p) * heads + h) * d;
        for (int c = 0; c < d; ++c) {
          q.clean[base + c] = k.clean[base + c] = alpha * feature(x, y, c);
          v.clean[base + c] = std::cos(vx[c] * x + vy[c] * y + vp[c]);
        }
      }
      for (int u = 0; u < o.text; ++u) {
        const float* s = subject[u % 3];
        const size_t base = (static_cast<size_t>(n_img + u) * heads + h) * d;
        for (int c = 0; c < d; ++c) {
          q.clean[base + c] = 0.9f * alpha * feature(s[0], s[1], c) + 0.3f * normal(rng);
          k.clean[base + c] = 0.9f * alpha * feature(s[0], s[1], c) + 0.3f * normal(rng);
          v.clean[base + c] = normal(rng);
        }
      }
    }
  }

  // sigma falls from 1 to 0; the drift turns half a circle over the run.
  void at_step(const Trajectory& t, int s, std::vector<float>& out) const {
    const float sigma = 1.0f - static_cast<float>(s) / std::max(1, steps - 1);
    const float theta = 3.14159265f * s / std::max(1, steps);
    const float noise = 0.5f * sigma, ca = 0.3f * std::cos(theta), cb = 0.3f * std::sin(theta);
    out.resize(t.clean.size());
    for (size_t e = 0; e < out.size(); ++e) {
      out[e] = t.clean[e] + noise * t.noise[e] + ca * t.drift_a[e] + cb * t.drift_b[e];
    }
  }
};

// A [1, N, H, d] tensor in fp32 or bf16.
struct Buffer {
  DType dtype;
  std::vector<uint8_t> bytes;
  int64_t n, h, d;
  Buffer(DType t, int64_t n_, int64_t h_, int64_t d_) : dtype(t), n(n_), h(h_), d(d_) {
    bytes.assign(static_cast<size_t>(n * h * d) * dtype_size(t), 0);
  }
  TensorRef ref() { return make_tensor(bytes.data(), dtype, {1, n, h, d}); }
  // v in logical token order (n_img image tokens, then text); stored with the text first or last.
  void set(const std::vector<float>& v, int64_t n_img, bool text_last) {
    const int64_t row = h * d;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t pos = text_last ? t : (t < n_img ? t + (n - n_img) : t - n_img);
      for (int64_t e = 0; e < row; ++e) {
        store_from_double(bytes.data(), dtype, pos * row + e, v[t * row + e]);
      }
    }
  }
  double at(int64_t e) const { return load_as_double(bytes.data(), dtype, e); }
};

double relative_l2(const Buffer& a, const Buffer& ref) {
  double num = 0.0, den = 0.0;
  for (int64_t e = 0; e < ref.n * ref.h * ref.d; ++e) {
    const double r = ref.at(e), x = a.at(e) - r;
    num += x * x;
    den += r * r;
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

double now_ms() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(clock::now().time_since_epoch()).count();
}

int run(const Options& o) {
  const Synthetic data(o);
  const Backend backend = make_backend(o, data.n);
  const DType dtype = backend.dtype;
  const bool gpu = backend.gpu;
  Buffer q(dtype, data.n, o.heads, o.head_dim), k = q, v = q, out = q, ref = q;
  const std::vector<TextRange> text = {o.text_last ? text_last(data.n, o.text)
                                                   : text_first(o.text)};
  LayerEngine engine(o.engine, backend.call);
  const Schedule& sched = engine.schedule();
  std::printf(
      "flashomni_demo: %d image (%dx%d) + %d text tokens (text %s), H=%d, d=%d, %s, "
      "blocks %d\n",
      data.n_img, o.size, o.size, o.text, o.text_last ? "last" : "first", o.heads, o.head_dim,
      dtype_name(dtype), o.block);
  std::printf(
      "schedule: S=%d, warm-up W=%d, update every N=%d, last step dense; %d updates; "
      "Taylor order %d; reuse below query density %.2f; tau_q=%.2f tau_kv=%.2f\n",
      o.steps, o.engine.schedule.warmup, o.engine.schedule.interval, sched.num_updates(),
      o.engine.taylor_order, o.engine.reuse_below, o.engine.policy.tau_q, o.engine.policy.tau_kv);
  std::printf("backend: %s\n", backend.description.c_str());
  if (gpu) {
    std::printf(
        "timing: time_ms = engine step, wall clock (host forecast and policy, copies, kernel, "
        "stream sync); gpu_us / dense_us = cuda::sparse_attention sparse / dense on the GPU "
        "(cudaEvent, planner + kernel), in microseconds\n");
    std::printf("%4s  %-8s  %7s  %7s  %7s  %9s  %9s  %9s  %9s\n", "step", "kind", "q_dens",
                "kv_dens", "pair", "time_ms", "gpu_us", "dense_us", "rel_err");
  } else {
    std::printf("%4s  %-8s  %7s  %7s  %7s  %9s  %9s  %9s\n", "step", "kind", "q_dens", "kv_dens",
                "pair", "time_ms", "dense_ms", "rel_err");
  }
  double total_ms = 0.0, dense_total_ms = 0.0, work = 0.0, err_sum = 0.0, err_max = 0.0;
  double gpu_total_ms = 0.0;
  double last_err = 0.0, last_sparse_err = NAN;
  int last_sparse = -1;
  std::vector<float> scratch;
  for (int s = 0; s < o.steps; ++s) {
    data.at_step(data.q, s, scratch), q.set(scratch, data.n_img, o.text_last);
    data.at_step(data.k, s, scratch), k.set(scratch, data.n_img, o.text_last);
    data.at_step(data.v, s, scratch), v.set(scratch, data.n_img, o.text_last);
    AttentionParams p;
    p.q = q.ref(), p.k = k.ref(), p.v = v.ref(), p.out = out.ref();
    const double t0 = now_ms();
    const StepReport r = engine.run_step(s, p, text);
    const double ms = now_ms() - t0;
    total_ms += ms;
    work += r.pair_density;
    const double gpu_ms = !gpu ? NAN : (r.kind == StepKind::kReuse ? 0.0 : backend.last_gpu_ms());
    if (gpu) gpu_total_ms += gpu_ms;
    double dense_ms = NAN, err = NAN;
    if (o.reference) {
      AttentionParams d = p;
      d.out = ref.ref();
      const double t1 = now_ms();
      cpu::sparse_attention(d);  // the error's reference: the exact oracle on either backend
      dense_ms = gpu ? backend.gpu_dense_ms(p) : now_ms() - t1;
      dense_total_ms += dense_ms;
      err = relative_l2(out, ref);
      err_sum += err;
      err_max = std::max(err_max, err);
      last_err = err;
      if (r.kind != StepKind::kUpdate) last_sparse_err = err, last_sparse = s;
    }
    if (gpu) {
      std::printf("%4d  %-8s  %7.3f  %7.3f  %7.3f  %9.2f  %9.1f  %9.1f  %9.2e\n", s,
                  step_kind_name(r.kind), r.query_density, r.kv_density, r.pair_density, ms,
                  1e3 * gpu_ms, 1e3 * dense_ms, err);
    } else {
      std::printf("%4d  %-8s  %7.3f  %7.3f  %7.3f  %9.1f  %9.1f  %9.2e\n", s,
                  step_kind_name(r.kind), r.query_density, r.kv_density, r.pair_density, ms,
                  dense_ms, err);
    }
    std::fflush(stdout);
  }
  std::printf("summary: attention FLOPs %.1f%% of dense (mean pair density over %d steps)\n",
              100.0 * work / o.steps, o.steps);
  if (gpu) {
    // The GPU's dense baseline is its own dense mode (the same kernel, all blocks), not the CPU.
    std::printf("summary: engine steps %.0f ms wall clock; GPU attention %.2f ms", total_ms,
                gpu_total_ms);
    if (o.reference) {
      std::printf(" vs GPU dense %.2f ms (%.2fx)", dense_total_ms, dense_total_ms / gpu_total_ms);
    }
    std::printf("\n");
  } else if (o.reference) {
    std::printf("summary: time %.0f ms vs dense %.0f ms (%.2fx); ", total_ms, dense_total_ms,
                dense_total_ms / total_ms);
  } else {
    std::printf("summary: time %.0f ms\n", total_ms);
  }
  if (o.reference) {
    std::printf(
        "%srel. L2 error mean %.2e, max %.2e, last sparse step (%d) %.2e, final step %.2e\n",
        gpu ? "summary: " : "", err_sum / o.steps, err_max, last_sparse, last_sparse_err, last_err);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    return run(o);
  } catch (const flashomni::Error& e) {
    std::fprintf(stderr, "flashomni_demo: %s\n", e.what());
    return 1;
  }
}
