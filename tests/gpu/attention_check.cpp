// FlashOmni GPU check program: cuda::sparse_attention against the CPU oracle (cpu::sparse_attention
// on fp32 copies of the same 16-bit inputs). Covers tails, densities 0..1, all cached, rows with
// every key block skipped, cached rows untouched (poisoned output), GQA, varlen, strided (packed
// qkv) inputs, both dtypes, head dims 64/128, bitwise determinism, CUDA-graph replay with new
// symbols, and the unsupported-config errors. Prints "N passed, M failed"; exit 1 on failure.
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "flashomni/attention.h"
#include "flashomni/cuda_ops.h"
#include "flashomni/numeric.h"
#include "flashomni/symbols.h"
#include "gpu/check_util.h"

namespace fo = flashomni;
namespace gpu_check = flashomni::gpu_check;

namespace {

using gpu_check::report;

constexpr uint16_t kPoison16 = 0xBEEF;
constexpr uint32_t kPoisonLse = 0x7FC0BEEFu;

struct Case {
  std::string name;
  fo::DType dtype = fo::DType::kBFloat16;
  int d = 128;
  int heads = 4, kv_heads = 4;
  int batch = 1;
  int seq_q = 256, seq_kv = 256;     // uniform batch
  std::vector<int> lens_q, lens_kv;  // varlen when non-empty
  double q_density = 1.0, kv_density = 1.0;
  bool symbols = true;      // false: dense mode (symbols == nullptr)
  bool packed_qkv = false;  // q/k/v are strided views of one [B, N, 3, H, d]
  bool quick = false;       // part of the small sanitizer run
};

uint16_t to16(fo::DType t, float f) {
  return t == fo::DType::kBFloat16 ? fo::float_to_bf16(f) : fo::float_to_fp16(f);
}
float from16(fo::DType t, uint16_t h) {
  return t == fo::DType::kBFloat16 ? fo::bf16_to_float(h) : fo::fp16_to_float(h);
}

template <class T>
T* device_copy(const std::vector<T>& h) {
  T* d = nullptr;
  CUDA_OK(cudaMalloc(&d, std::max<size_t>(1, h.size()) * sizeof(T)));
  if (!h.empty()) CUDA_OK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

fo::TensorRef ref(void* p, fo::DType t, std::vector<int64_t> shape, std::vector<int64_t> stride,
                  fo::Device dev) {
  fo::TensorRef r;
  r.data = p;
  r.dtype = t;
  r.device = dev;
  r.ndim = static_cast<int32_t>(shape.size());
  for (int i = 0; i < r.ndim; ++i) {
    r.shape[i] = shape[i];
    r.stride[i] = stride[i];
  }
  return r;
}

std::vector<int64_t> contiguous(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

// Everything one case needs on host and device.
struct Problem {
  Case c;
  bool varlen = false;
  int64_t rows_q = 0, rows_kv = 0;  // per batch entry (uniform) or total (varlen)
  std::vector<int32_t> cu_q, cu_kv;
  fo::SeqLens lens;
  fo::Symbols sym;
  std::vector<float> qf, kf, vf;  // contiguous fp32 values of the 16-bit inputs
  // device
  void* dqkv = nullptr;  // packed buffer (packed_qkv) or null
  void *dq = nullptr, *dk = nullptr, *dv = nullptr, *dout = nullptr;
  float* dlse = nullptr;
  int32_t *dcu_q = nullptr, *dcu_kv = nullptr;
  uint32_t *dqbits = nullptr, *dkvbits = nullptr;
  fo::SymbolsRef dsym;
  fo::AttentionParams gp;  // GPU params
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  int64_t out_elems = 0, lse_elems = 0;
};

void build(Problem& P, std::mt19937& rng) {
  const Case& c = P.c;
  P.varlen = !c.lens_q.empty();
  const int64_t H = c.heads, Hk = c.kv_heads, d = c.d;
  if (P.varlen) {
    P.cu_q = {0};
    P.cu_kv = {0};
    for (size_t b = 0; b < c.lens_q.size(); ++b) {
      P.cu_q.push_back(P.cu_q.back() + c.lens_q[b]);
      P.cu_kv.push_back(P.cu_kv.back() + c.lens_kv[b]);
    }
    P.rows_q = P.cu_q.back();
    P.rows_kv = P.cu_kv.back();
    P.lens.batch = static_cast<int32_t>(c.lens_q.size());
    P.lens.cu_seqlens_q = P.cu_q.data();
    P.lens.cu_seqlens_kv = P.cu_kv.data();
  } else {
    P.rows_q = c.seq_q;
    P.rows_kv = c.seq_kv;
    P.lens.batch = c.batch;
    P.lens.seqlen_q = c.seq_q;
    P.lens.seqlen_kv = c.seq_kv;
  }
  const int64_t B = P.varlen ? 1 : c.batch;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto fill = [&](std::vector<float>& v, int64_t n) {
    v.resize(n);
    for (auto& x : v) x = from16(c.dtype, to16(c.dtype, normal(rng)));
  };
  fill(P.qf, B * P.rows_q * H * d);
  fill(P.kf, B * P.rows_kv * Hk * d);
  fill(P.vf, B * P.rows_kv * Hk * d);

  // Symbols: random per (b, h, i) and per (b, h, i, j) inside each request's range.
  const fo::SymbolShape shape = fo::symbol_shape_for(P.lens, c.heads);
  P.sym = fo::Symbols(shape);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  for (int b = 0; b < P.lens.batch; ++b) {
    const int nqb = fo::request_q_blocks(P.lens, b, shape.block_q);
    const int nkb = fo::request_kv_blocks(P.lens, b, shape.block_kv);
    for (int h = 0; h < c.heads; ++h) {
      for (int i = 0; i < nqb; ++i) {
        P.sym.set_query(b, h, i, uni(rng) < c.q_density);
        for (int j = 0; j < nkb; ++j) P.sym.set_kv(b, h, i, j, uni(rng) < c.kv_density);
      }
    }
  }

  // Device tensors in the 16-bit storage type (optionally strided views of a packed qkv buffer).
  auto to_dev16 = [&](const std::vector<float>& v) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = to16(c.dtype, v[i]);
    return h;
  };
  const fo::Device cuda = fo::Device::kCUDA;
  std::vector<int64_t> qshape =
      P.varlen ? std::vector<int64_t>{P.rows_q, H, d} : std::vector<int64_t>{B, P.rows_q, H, d};
  std::vector<int64_t> kshape =
      P.varlen ? std::vector<int64_t>{P.rows_kv, Hk, d} : std::vector<int64_t>{B, P.rows_kv, Hk, d};
  if (c.packed_qkv) {  // [B, N, 3, H, d]: q/k/v row stride 3*H*d
    std::vector<uint16_t> packed(B * P.rows_q * 3 * H * d);
    const auto q16 = to_dev16(P.qf), k16 = to_dev16(P.kf), v16 = to_dev16(P.vf);
    for (int64_t r = 0; r < B * P.rows_q; ++r) {
      for (int64_t x = 0; x < H * d; ++x) {
        packed[(r * 3 + 0) * H * d + x] = q16[r * H * d + x];
        packed[(r * 3 + 1) * H * d + x] = k16[r * H * d + x];
        packed[(r * 3 + 2) * H * d + x] = v16[r * H * d + x];
      }
    }
    P.dqkv = device_copy(packed);
    auto* base = static_cast<uint16_t*>(P.dqkv);
    std::vector<int64_t> st = {P.rows_q * 3 * H * d, 3 * H * d, d, 1};
    P.gp.q = ref(base, c.dtype, qshape, st, cuda);
    P.gp.k = ref(base + H * d, c.dtype, kshape, st, cuda);
    P.gp.v = ref(base + 2 * H * d, c.dtype, kshape, st, cuda);
  } else {
    P.dq = device_copy(to_dev16(P.qf));
    P.dk = device_copy(to_dev16(P.kf));
    P.dv = device_copy(to_dev16(P.vf));
    P.gp.q = ref(P.dq, c.dtype, qshape, contiguous(qshape), cuda);
    P.gp.k = ref(P.dk, c.dtype, kshape, contiguous(kshape), cuda);
    P.gp.v = ref(P.dv, c.dtype, kshape, contiguous(kshape), cuda);
  }
  P.out_elems = B * P.rows_q * H * d;
  CUDA_OK(cudaMalloc(&P.dout, P.out_elems * 2));
  P.gp.out = ref(P.dout, c.dtype, qshape, contiguous(qshape), cuda);
  std::vector<int64_t> lshape =
      P.varlen ? std::vector<int64_t>{H, P.rows_q} : std::vector<int64_t>{B, H, P.rows_q};
  P.lse_elems = B * H * P.rows_q;
  CUDA_OK(cudaMalloc(&P.dlse, std::max<int64_t>(1, P.lse_elems) * 4));
  P.gp.lse = ref(P.dlse, fo::DType::kFloat32, lshape, contiguous(lshape), cuda);
  if (P.varlen) {
    P.dcu_q = device_copy(P.cu_q);
    P.dcu_kv = device_copy(P.cu_kv);
    P.gp.cu_seqlens_q = ref(P.dcu_q, fo::DType::kInt32, {(int64_t)P.cu_q.size()}, {1}, cuda);
    P.gp.cu_seqlens_kv = ref(P.dcu_kv, fo::DType::kInt32, {(int64_t)P.cu_kv.size()}, {1}, cuda);
    int mq = 0, mk = 0;
    for (size_t b = 0; b < c.lens_q.size(); ++b) {
      mq = std::max(mq, c.lens_q[b]);
      mk = std::max(mk, c.lens_kv[b]);
    }
    P.gp.max_seqlen_q = mq;
    P.gp.max_seqlen_kv = mk;
  }
  P.dqbits = device_copy(P.sym.q_bits());
  P.dkvbits = device_copy(P.sym.kv_bits());
  P.dsym = fo::SymbolsRef{P.dqbits, P.dkvbits, shape, cuda};
  P.gp.symbols = c.symbols ? &P.dsym : nullptr;
  P.workspace_bytes = fo::cuda::sparse_attention_workspace_size(P.gp);
  CUDA_OK(cudaMalloc(&P.workspace, std::max<size_t>(1, P.workspace_bytes)));
}

void release(Problem& P) {
  for (void* p : {P.dqkv, P.dq, P.dk, P.dv, P.dout, (void*)P.dlse, (void*)P.dcu_q, (void*)P.dcu_kv,
                  (void*)P.dqbits, (void*)P.dkvbits, P.workspace}) {
    if (p) cudaFree(p);
  }
}

void poison(Problem& P) {
  std::vector<uint16_t> o(P.out_elems, kPoison16);
  std::vector<uint32_t> l(P.lse_elems, kPoisonLse);
  CUDA_OK(cudaMemcpy(P.dout, o.data(), o.size() * 2, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(P.dlse, l.data(), l.size() * 4, cudaMemcpyHostToDevice));
}

void run_gpu(Problem& P, std::vector<uint16_t>& out, std::vector<uint32_t>& lse) {
  poison(P);
  fo::cuda::sparse_attention(P.gp, P.workspace, P.workspace_bytes, nullptr);
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  out.resize(P.out_elems);
  lse.resize(P.lse_elems);
  CUDA_OK(cudaMemcpy(out.data(), P.dout, out.size() * 2, cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(lse.data(), P.dlse, lse.size() * 4, cudaMemcpyDeviceToHost));
}

// Compares the GPU result with the oracle row by row; returns a failure reason or "".
std::string compare(Problem& P, const std::vector<uint16_t>& out, const std::vector<uint32_t>& lse,
                    std::string& stats) {
  const Case& c = P.c;
  const int64_t H = c.heads, d = c.d, B = P.varlen ? 1 : c.batch;
  // Oracle on fp32 copies, same logical layout, contiguous.
  std::vector<float> ref_out(P.out_elems, 0.0f), ref_lse(std::max<int64_t>(1, P.lse_elems), 0.0f);
  fo::AttentionParams cp;
  const fo::Device cpu = fo::Device::kCPU;
  auto shp = [&](const fo::TensorRef& t) {
    return std::vector<int64_t>(t.shape, t.shape + t.ndim);
  };
  cp.q = ref(P.qf.data(), fo::DType::kFloat32, shp(P.gp.q), contiguous(shp(P.gp.q)), cpu);
  cp.k = ref(P.kf.data(), fo::DType::kFloat32, shp(P.gp.k), contiguous(shp(P.gp.k)), cpu);
  cp.v = ref(P.vf.data(), fo::DType::kFloat32, shp(P.gp.v), contiguous(shp(P.gp.v)), cpu);
  cp.out = ref(ref_out.data(), fo::DType::kFloat32, shp(P.gp.out), contiguous(shp(P.gp.out)), cpu);
  cp.lse = ref(ref_lse.data(), fo::DType::kFloat32, shp(P.gp.lse), contiguous(shp(P.gp.lse)), cpu);
  if (P.varlen) {
    cp.cu_seqlens_q = ref(P.cu_q.data(), fo::DType::kInt32, {(int64_t)P.cu_q.size()}, {1}, cpu);
    cp.cu_seqlens_kv = ref(P.cu_kv.data(), fo::DType::kInt32, {(int64_t)P.cu_kv.size()}, {1}, cpu);
    cp.max_seqlen_q = P.gp.max_seqlen_q;
    cp.max_seqlen_kv = P.gp.max_seqlen_kv;
  }
  const fo::SymbolsRef hsym = P.sym.ref();
  cp.symbols = c.symbols ? &hsym : nullptr;
  fo::cpu::sparse_attention(cp);

  double err2 = 0, ref2 = 0, max_abs = 0, max_lse = 0;
  int64_t cached_rows = 0, empty_rows = 0, rows = 0;
  const int64_t requests = P.varlen ? static_cast<int64_t>(c.lens_q.size()) : B;
  for (int64_t b = 0; b < requests; ++b) {
    const int64_t q0 = P.varlen ? P.cu_q[b] : 0;
    const int64_t qn = P.varlen ? c.lens_q[b] : P.rows_q;
    const int64_t bi = P.varlen ? 0 : b;
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = 0; t < qn; ++t) {
        const int64_t orow = ((bi * P.rows_q + q0 + t) * H + h) * d;
        const int64_t li = (bi * H + h) * P.rows_q + q0 + t;
        const bool active = !c.symbols || P.sym.query(static_cast<int>(b), static_cast<int>(h),
                                                      static_cast<int>(t / 128));
        if (!active) {
          ++cached_rows;
          for (int64_t x = 0; x < d; ++x) {
            if (out[orow + x] != kPoison16)
              return "cached row written (out) at b=" + std::to_string(b) +
                     " h=" + std::to_string(h) + " t=" + std::to_string(t);
          }
          if (lse[li] != kPoisonLse) return "cached row written (lse) at t=" + std::to_string(t);
          continue;
        }
        ++rows;
        float gl;
        std::memcpy(&gl, &lse[li], 4);
        if (std::isinf(ref_lse[li]) && ref_lse[li] < 0) {
          ++empty_rows;
          if (!(std::isinf(gl) && gl < 0)) return "empty row lse != -inf at t=" + std::to_string(t);
          for (int64_t x = 0; x < d; ++x) {
            if (from16(c.dtype, out[orow + x]) != 0.0f) return "empty row out != 0";
          }
          continue;
        }
        if (!std::isfinite(gl)) return "non-finite lse at t=" + std::to_string(t);
        max_lse = std::max(max_lse, std::fabs(double(gl) - ref_lse[li]));
        for (int64_t x = 0; x < d; ++x) {
          const double g = from16(c.dtype, out[orow + x]), r = ref_out[orow + x];
          if (!std::isfinite(g)) return "non-finite out at t=" + std::to_string(t);
          err2 += (g - r) * (g - r);
          ref2 += r * r;
          max_abs = std::max(max_abs, std::fabs(g - r));
        }
      }
    }
  }
  const double rel = ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0;
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "rows=%lld cached=%lld empty=%lld rel_err=%.2e max_abs=%.2e max_lse_err=%.2e",
                (long long)rows, (long long)cached_rows, (long long)empty_rows, rel, max_abs,
                max_lse);
  stats = buf;
  const double tol = c.dtype == fo::DType::kBFloat16 ? 1.5e-2 : 4e-3;
  if (rel > tol) return "relative error above " + std::to_string(tol);
  if (max_lse > 2e-2) return "lse error above 2e-2";
  return "";
}

void run_case(const Case& c, std::mt19937& rng) {
  Problem P;
  P.c = c;
  try {
    build(P, rng);
    std::vector<uint16_t> out1, out2;
    std::vector<uint32_t> lse1, lse2;
    run_gpu(P, out1, lse1);
    run_gpu(P, out2, lse2);
    std::string stats;
    const std::string why = compare(P, out1, lse1, stats);
    report(why.empty(), c.name, why.empty() ? stats : why + " | " + stats);
    const bool same = out1 == out2 && lse1 == lse2;
    report(same, c.name + " deterministic", same ? "bitwise equal over 2 runs" : "runs differ");
  } catch (const fo::Error& e) {
    report(false, c.name, std::string("threw: ") + e.what());
  }
  release(P);
}

// All-ones symbols must give exactly the dense (symbols == nullptr) result.
void check_dense_equivalence(std::mt19937& rng) {
  Case c;
  c.name = "all-ones symbols == dense";
  c.seq_q = 640;
  c.seq_kv = 700;
  c.batch = 2;
  Problem P;
  P.c = c;
  build(P, rng);
  std::vector<uint16_t> o1, o2;
  std::vector<uint32_t> l1, l2;
  run_gpu(P, o1, l1);
  P.gp.symbols = nullptr;
  run_gpu(P, o2, l2);
  report(o1 == o2 && l1 == l2, c.name, "bitwise");
  release(P);
}

// Captures plan + run in a CUDA graph, replays it after changing the device symbols, and compares
// with a direct call on the same symbols.
void check_graph_replay(std::mt19937& rng) {
  Case c;
  c.name = "graph replay with new symbols";
  c.seq_q = c.seq_kv = 1024;
  c.q_density = 0.6;
  c.kv_density = 0.5;
  Problem P;
  P.c = c;
  build(P, rng);
  std::vector<uint16_t> direct, replay;
  std::vector<uint32_t> ldirect, lreplay;
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  fo::cuda::sparse_attention(P.gp, P.workspace, P.workspace_bytes, nullptr);  // warm attributes
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  fo::cuda::sparse_attention(P.gp, P.workspace, P.workspace_bytes, s);
  CUDA_OK(cudaStreamEndCapture(s, &graph));
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  bool ok = true;
  for (int round = 0; round < 2; ++round) {
    // New symbols in place.
    std::uniform_int_distribution<uint32_t> bits;
    for (auto& w : P.sym.q_bits()) w = bits(rng);
    for (auto& w : P.sym.kv_bits()) w = bits(rng);
    CUDA_OK(cudaMemcpy(P.dqbits, P.sym.q_bits().data(), P.sym.q_bits().size() * 4,
                       cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(P.dkvbits, P.sym.kv_bits().data(), P.sym.kv_bits().size() * 4,
                       cudaMemcpyHostToDevice));
    run_gpu(P, direct, ldirect);
    poison(P);
    CUDA_OK(cudaGraphLaunch(exec, s));
    CUDA_OK(cudaStreamSynchronize(s));
    replay.resize(P.out_elems);
    lreplay.resize(P.lse_elems);
    CUDA_OK(cudaMemcpy(replay.data(), P.dout, replay.size() * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(lreplay.data(), P.dlse, lreplay.size() * 4, cudaMemcpyDeviceToHost));
    ok = ok && direct == replay && ldirect == lreplay;
  }
  report(ok, c.name, "2 replays bitwise equal to direct calls");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
  release(P);
}

void check_errors(std::mt19937& rng) {
  Case c;
  c.name = "errors";
  c.seq_q = c.seq_kv = 256;
  Problem P;
  P.c = c;
  build(P, rng);
  auto expect = [&](const char* what, fo::Status st, auto&& fn) {
    try {
      fn();
      report(false, what, "no error thrown");
    } catch (const fo::Error& e) {
      report(e.status() == st, what, e.what());
    }
  };
  expect("workspace too small", fo::Status::kInvalidArgument,
         [&] { fo::cuda::sparse_attention(P.gp, P.workspace, P.workspace_bytes - 1, nullptr); });
  fo::SymbolsRef bad = P.dsym;
  bad.shape.block_kv = 64;
  bad.shape.kv_blocks = 4;
  fo::AttentionParams p64 = P.gp;
  p64.symbols = &bad;
  expect("block_kv 64 unsupported", fo::Status::kUnsupported,
         [&] { fo::cuda::sparse_attention(p64, P.workspace, P.workspace_bytes, nullptr); });
  release(P);
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? static_cast<unsigned>(std::stoul(argv[1]))
                                 : static_cast<unsigned>(std::random_device{}());
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const bool quick = argc > 2 && std::string(argv[2]) == "quick";
  std::vector<Case> cases;
  auto add = [&](Case c) { cases.push_back(c); };
  const fo::DType bf = fo::DType::kBFloat16, fp = fo::DType::kFloat16;
  {
    Case c;
    c.name = "dense bf16 d128 N=384";
    c.symbols = false;
    c.quick = true;
    c.seq_q = c.seq_kv = 384;
    add(c);
  }
  {
    for (fo::DType t : {bf, fp}) {
      for (int d : {64, 128}) {
        for (double dens : {0.0, 0.1, 0.5, 1.0}) {
          Case c;
          c.dtype = t;
          c.d = d;
          c.batch = 2;
          c.heads = 4;
          c.kv_heads = 2;
          c.seq_q = 1000;  // tail of 104 rows
          c.seq_kv = 777;  // tail of 9 keys
          c.q_density = 0.7;
          c.kv_density = dens;
          c.name = std::string(t == bf ? "bf16" : "fp16") + " d" + std::to_string(d) +
                   " gqa tails kv_density=" + std::to_string(dens).substr(0, 4);
          add(c);
        }
      }
    }
    Case c;
    c.name = "all cached";
    c.q_density = 0.0;
    c.seq_q = c.seq_kv = 512;
    add(c);
    c.name = "every key block skipped";
    c.q_density = 1.0;
    c.kv_density = 0.0;
    add(c);
    c = Case{};
    c.name = "varlen bf16 d128 gqa";
    c.lens_q = {300, 128, 1, 517, 64};
    c.lens_kv = {200, 640, 129, 0, 1};
    c.heads = 6;
    c.kv_heads = 3;
    c.q_density = 0.8;
    c.kv_density = 0.6;
    c.quick = true;
    add(c);
    c.quick = false;
    c.name = "varlen fp16 d64 dense";
    c.dtype = fp;
    c.d = 64;
    c.symbols = false;
    add(c);
    c = Case{};
    c.name = "packed qkv strides bf16";
    c.packed_qkv = true;
    c.batch = 2;
    c.seq_q = c.seq_kv = 520;
    c.q_density = 0.5;
    c.kv_density = 0.5;
    add(c);
    c = Case{};
    c.name = "many items N=4608 H=4 (more items than SMs)";
    c.seq_q = c.seq_kv = 4608;
    c.q_density = 0.8;
    c.kv_density = 0.3;
    add(c);
    c = Case{};
    c.name = "single query token";
    c.seq_q = 1;
    c.seq_kv = 300;
    c.dtype = fp;
    add(c);
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (const Case& c : cases) {
    if (!quick || c.quick) run_case(c, rng);
  }
  if (!quick) {
    check_dense_equivalence(rng);
    check_graph_replay(rng);
    check_errors(rng);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("checks took %.1f s\n", secs);
  return gpu_check::finish();
}
