// Host tests of the shared validators check_attention / check_gemm_q / check_gemm_o: each bad
// argument raises kInvalidArgument naming it, for the CPU rules (reads cu_seqlens and symbol bits)
// and the CUDA rules (shapes, 16-byte alignment, head dims; never reads device memory).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "flashomni/attention.h"
#include "flashomni/gemm.h"
#include "test_symbols_util.h"

namespace flashomni {
namespace {

// 256-byte aligned host storage; CUDA-flagged tensors point here too (the checks never read it).
class Arena {
 public:
  void* get(std::size_t bytes) {
    blocks_.emplace_back(bytes + 256, 0);
    auto addr = reinterpret_cast<std::uintptr_t>(blocks_.back().data());
    return reinterpret_cast<void*>((addr + 255) / 256 * 256);
  }
  TensorRef tensor(DType dtype, std::initializer_list<int64_t> shape, Device device) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return make_tensor(get(static_cast<std::size_t>(n) * dtype_size(dtype) + 16), dtype, shape,
                       device);
  }

 private:
  std::vector<std::vector<uint8_t>> blocks_;
};

// --- attention --------------------------------------------------------------------------------

constexpr int kB = 2, kN = 100, kNkv = 90, kH = 4, kHkv = 2, kD = 64;

struct AttnFixture {
  Arena arena;
  Device device;
  AttentionParams p;
  std::vector<int32_t> cu_q{0, 60, 100}, cu_kv{0, 90, 130};
  Symbols symbols;
  SymbolsRef sref;

  // Uniform batch [2, 100, 4, 64] / [2, 90, 2, 64] in bf16, or varlen with the offsets above.
  AttnFixture(Device dev, bool varlen) : device(dev) {
    const DType dt = DType::kBFloat16;
    if (varlen) {
      p.q = arena.tensor(dt, {100, kH, kD}, dev);
      p.k = arena.tensor(dt, {130, kHkv, kD}, dev);
      p.v = arena.tensor(dt, {130, kHkv, kD}, dev);
      p.out = arena.tensor(dt, {100, kH, kD}, dev);
      p.lse = arena.tensor(DType::kFloat32, {kH, 100}, dev);
      int32_t* cq = static_cast<int32_t*>(arena.get(64));
      int32_t* ck = static_cast<int32_t*>(arena.get(64));
      std::copy(cu_q.begin(), cu_q.end(), cq);
      std::copy(cu_kv.begin(), cu_kv.end(), ck);
      p.cu_seqlens_q = make_tensor(cq, DType::kInt32, {3}, dev);
      p.cu_seqlens_kv = make_tensor(ck, DType::kInt32, {3}, dev);
      p.max_seqlen_q = 60;
      p.max_seqlen_kv = 90;
      SeqLens lens{2, 0, 0, cu_q.data(), cu_kv.data()};
      symbols = dense_symbols(lens, kH, 32, 16);
    } else {
      p.q = arena.tensor(dt, {kB, kN, kH, kD}, dev);
      p.k = arena.tensor(dt, {kB, kNkv, kHkv, kD}, dev);
      p.v = arena.tensor(dt, {kB, kNkv, kHkv, kD}, dev);
      p.out = arena.tensor(dt, {kB, kN, kH, kD}, dev);
      p.lse = arena.tensor(DType::kFloat32, {kB, kH, kN}, dev);
      symbols = dense_symbols(SeqLens{kB, kN, kNkv}, kH, 32, 16);
    }
    sref = symbols.ref();
    sref.device = dev;
    p.symbols = &sref;
  }

  // Applies `mutate` to a copy of the valid arguments and checks the error names `name`.
  void expect_rejects(const std::function<void(AttentionParams&)>& mutate, const char* name,
                      const char* file, int line) {
    AttentionParams bad = p;
    SymbolsRef bad_symbols = sref;
    bad.symbols = &bad_symbols;
    mutate(bad);
    const std::string quoted = std::string("argument '") + name + "'";
    testing::expect_invalid_argument([&] { check_attention(bad, device); }, {quoted}, file, line);
  }
};

#define EXPECT_ATTN_REJECTS(fixture, mutation, name) \
  (fixture).expect_rejects([&](AttentionParams& a) { mutation; }, name, __FILE__, __LINE__)

TEST(CheckAttention, ValidArgumentsGiveTheProblem) {
  for (Device dev : {Device::kCPU, Device::kCUDA}) {
    for (bool varlen : {false, true}) {
      AttnFixture f(dev, varlen);
      const AttentionProblem prob = check_attention(f.p, dev);
      EXPECT_EQ(prob.batch, 2);
      EXPECT_EQ(prob.heads, kH);
      EXPECT_EQ(prob.kv_heads, kHkv);
      EXPECT_EQ(prob.head_dim, kD);
      EXPECT_EQ(prob.varlen, varlen);
      EXPECT_EQ(prob.max_seqlen_q, varlen ? 60 : kN);
      EXPECT_EQ(prob.max_seqlen_kv, kNkv);
      EXPECT_FLOAT_EQ(prob.softmax_scale, 0.125f);  // default 1 / sqrt(64)
    }
  }
  AttnFixture f(Device::kCPU, false);
  f.p.lse = TensorRef{};  // optional
  f.p.symbols = nullptr;  // dense
  f.p.softmax_scale = 0.5f;
  EXPECT_FLOAT_EQ(check_attention(f.p, Device::kCPU).softmax_scale, 0.5f);
}

TEST(CheckAttention, TensorArgumentsAreNamed) {
  for (Device dev : {Device::kCPU, Device::kCUDA}) {
    AttnFixture f(dev, false);
    EXPECT_ATTN_REJECTS(f, a.q.data = nullptr, "q");
    EXPECT_ATTN_REJECTS(f, a.k.data = nullptr, "k");
    EXPECT_ATTN_REJECTS(f, a.v.data = nullptr, "v");
    EXPECT_ATTN_REJECTS(f, a.out.data = nullptr, "out");
    EXPECT_ATTN_REJECTS(f, a.q.dtype = DType::kInt32, "q");
    EXPECT_ATTN_REJECTS(f, a.k.dtype = DType::kFloat16, "k");
    EXPECT_ATTN_REJECTS(f, a.v.dtype = DType::kFloat16, "v");
    EXPECT_ATTN_REJECTS(f, a.out.dtype = DType::kFloat16, "out");
    EXPECT_ATTN_REJECTS(f, a.q.ndim = 2, "q");
    EXPECT_ATTN_REJECTS(f, a.k.ndim = 3, "k");
    EXPECT_ATTN_REJECTS(f, a.v.ndim = 3, "v");
    EXPECT_ATTN_REJECTS(f, a.q.device = dev == Device::kCPU ? Device::kCUDA : Device::kCPU, "q");
    EXPECT_ATTN_REJECTS(f, a.out.device = dev == Device::kCPU ? Device::kCUDA : Device::kCPU,
                        "out");
    EXPECT_ATTN_REJECTS(f, a.q.stride[3] = 2, "q");
    EXPECT_ATTN_REJECTS(f, a.v.stride[1] = -a.v.stride[1], "v");
    EXPECT_ATTN_REJECTS(f, a.k.shape[2] = 3, "k");  // 4 query heads, 3 kv heads
    EXPECT_ATTN_REJECTS(f, a.k.shape[3] = 32, "k");
    EXPECT_ATTN_REJECTS(f, a.k.shape[0] = a.v.shape[0] = 1, "k");
    EXPECT_ATTN_REJECTS(f, a.v.shape[1] = kNkv - 1, "v");
    EXPECT_ATTN_REJECTS(f, a.out.shape[1] = kN + 1, "out");
    EXPECT_ATTN_REJECTS(f, a.out.ndim = 3, "out");
    EXPECT_ATTN_REJECTS(f, a.lse.dtype = DType::kBFloat16, "lse");
    EXPECT_ATTN_REJECTS(f, a.lse.shape[2] = kN - 1, "lse");
    EXPECT_ATTN_REJECTS(f, a.lse.stride[2] = 2, "lse");
    EXPECT_ATTN_REJECTS(f, a.cu_seqlens_q = a.lse, "cu_seqlens_q");
    EXPECT_ATTN_REJECTS(f, a.cu_seqlens_kv = a.lse, "cu_seqlens_kv");
    EXPECT_ATTN_REJECTS(f, a.softmax_scale = -1.0f, "softmax_scale");
    EXPECT_ATTN_REJECTS(f, a.softmax_scale = std::nanf(""), "softmax_scale");
    EXPECT_ATTN_REJECTS(f, a.softmax_scale = std::numeric_limits<float>::infinity(),
                        "softmax_scale");
  }
}

TEST(CheckAttention, BackendSpecificRules) {
  AttnFixture cpu(Device::kCPU, false);
  // The oracle takes fp32 / fp64 storage and any head dim; the kernels only bf16/fp16 and
  // 64/128/256.
  cpu.p.symbols = nullptr;
  for (TensorRef* t : {&cpu.p.q, &cpu.p.k, &cpu.p.v, &cpu.p.out}) t->dtype = DType::kFloat32;
  cpu.p.q.shape[3] = cpu.p.k.shape[3] = cpu.p.v.shape[3] = cpu.p.out.shape[3] = 40;
  EXPECT_NO_THROW(check_attention(cpu.p, Device::kCPU));
  EXPECT_ATTN_REJECTS(cpu, a.q.data = static_cast<char*>(a.q.data) + 2, "q");  // fp32 misaligned

  AttnFixture gpu(Device::kCUDA, false);
  auto all_fp32 = [](AttentionParams& a) {
    for (TensorRef* t : {&a.q, &a.k, &a.v, &a.out}) t->dtype = DType::kFloat32;
  };
  EXPECT_ATTN_REJECTS(gpu, all_fp32(a), "q");
  EXPECT_ATTN_REJECTS(gpu, a.q.shape[3] = a.k.shape[3] = a.v.shape[3] = a.out.shape[3] = 96, "q");
  // 16-byte rules (TMA): base pointers, then row strides (a [.., d = 64 + 4] bf16 row is 136 B).
  EXPECT_ATTN_REJECTS(gpu, a.q.data = static_cast<char*>(a.q.data) + 2, "q");
  EXPECT_ATTN_REJECTS(gpu, a.v.data = static_cast<char*>(a.v.data) + 8, "v");
  EXPECT_ATTN_REJECTS(gpu, a.k.stride[1] = kHkv * kD + 4;
                      a.k.stride[0] = a.k.stride[1] * kNkv, "k");
  EXPECT_ATTN_REJECTS(gpu, a.out.stride[2] = kD + 4, "out");
  // The same strides are fine for the CPU oracle.
  AttnFixture cpu2(Device::kCPU, false);
  cpu2.p.k.stride[1] = kHkv * kD + 4;
  cpu2.p.k.stride[0] = cpu2.p.k.stride[1] * kNkv;
  EXPECT_NO_THROW(check_attention(cpu2.p, Device::kCPU));
}

TEST(CheckAttention, VarlenArgumentsAreNamed) {
  for (Device dev : {Device::kCPU, Device::kCUDA}) {
    AttnFixture f(dev, true);
    EXPECT_ATTN_REJECTS(f, a.cu_seqlens_q.data = nullptr, "cu_seqlens_q");
    EXPECT_ATTN_REJECTS(f, a.cu_seqlens_kv.data = nullptr, "cu_seqlens_kv");
    EXPECT_ATTN_REJECTS(f, a.cu_seqlens_q.dtype = DType::kUInt32, "cu_seqlens_q");
    EXPECT_ATTN_REJECTS(f, a.cu_seqlens_kv.shape[0] = 4, "cu_seqlens_kv");
    EXPECT_ATTN_REJECTS(f, a.cu_seqlens_q.shape[0] = 1, "cu_seqlens_q");
    EXPECT_ATTN_REJECTS(f,
                        a.cu_seqlens_q.device = dev == Device::kCPU ? Device::kCUDA : Device::kCPU,
                        "cu_seqlens_q");
    EXPECT_ATTN_REJECTS(f, a.max_seqlen_q = 101, "max_seqlen_q");
    EXPECT_ATTN_REJECTS(f, a.max_seqlen_kv = -1, "max_seqlen_kv");
    EXPECT_ATTN_REJECTS(f, a.lse.shape[1] = 60, "lse");
  }
  // Offsets are read on the CPU only.
  AttnFixture f(Device::kCPU, true);
  int32_t* cq = f.p.cu_seqlens_q.ptr<int32_t>();
  int32_t* ck = f.p.cu_seqlens_kv.ptr<int32_t>();
  EXPECT_ATTN_REJECTS(f, a.max_seqlen_q = 59, "max_seqlen_q");  // the longest request is 60
  EXPECT_ATTN_REJECTS(f, a.max_seqlen_kv = 91, "max_seqlen_kv");
  cq[1] = 120;  // 120 > 100: non-decreasing broken at the end
  EXPECT_ATTN_REJECTS(f, (void)a, "cu_seqlens_q");
  cq[1] = 60;
  ck[2] = 131;  // past the 130 packed keys
  EXPECT_ATTN_REJECTS(f, (void)a, "cu_seqlens_kv");
  ck[2] = 130;
  ck[0] = 5;
  EXPECT_ATTN_REJECTS(f, (void)a, "cu_seqlens_kv");
  ck[0] = 0;
  EXPECT_NO_THROW(check_attention(f.p, Device::kCPU));
}

TEST(CheckAttention, SymbolsAreValidated) {
  for (Device dev : {Device::kCPU, Device::kCUDA}) {
    for (bool varlen : {false, true}) {
      AttnFixture f(dev, varlen);
      const Device other = dev == Device::kCPU ? Device::kCUDA : Device::kCPU;
      EXPECT_ATTN_REJECTS(f, const_cast<SymbolsRef*>(a.symbols)->device = other, "symbols.device");
      EXPECT_ATTN_REJECTS(f, const_cast<SymbolsRef*>(a.symbols)->shape.heads = kH - 1,
                          "symbols.heads");
      EXPECT_ATTN_REJECTS(f, const_cast<SymbolsRef*>(a.symbols)->shape.batch = 3, "symbols.batch");
      EXPECT_ATTN_REJECTS(f, const_cast<SymbolsRef*>(a.symbols)->shape.q_blocks += 1,
                          "symbols.q_blocks");
      EXPECT_ATTN_REJECTS(f, const_cast<SymbolsRef*>(a.symbols)->shape.kv_blocks -= 1,
                          "symbols.kv_blocks");
      EXPECT_ATTN_REJECTS(f, const_cast<SymbolsRef*>(a.symbols)->shape.block_q = 40,
                          "symbols.block_q");
      EXPECT_ATTN_REJECTS(f, const_cast<SymbolsRef*>(a.symbols)->q_bits = nullptr,
                          "symbols.q_bits");
    }
  }
  // CPU symbols are read: a kept key block past the request's keys is rejected.
  AttnFixture f(Device::kCPU, true);
  // Request 1 has 40 keys = 3 blocks of 16; block 4 exists in the padded grid (6 blocks).
  f.symbols.set_kv(1, 0, 0, 4, true);
  f.sref = f.symbols.ref();
  EXPECT_ATTN_REJECTS(f, (void)a, "symbols.kv_bits");
}

// --- GEMM-Q / GEMM-O ---------------------------------------------------------------------------

constexpr int kM = 100, kK = 96, kHeads = 2, kHeadDim = 64, kExtra = 32, kNo = 80;

struct GemmFixture {
  Arena arena;
  Device device;
  GemmQParams q;
  GemmOParams o;
  Symbols symbols;
  SymbolsRef sref;

  // x [2, 100, 96] -> q [2, 100, 128]; a [2, 100, 128 + 32] -> y [2, 100, 80]; row_offset 28:
  // rows 28..127 of a 128-token grid of 32-token blocks.
  explicit GemmFixture(Device dev) : device(dev) {
    const DType dt = DType::kFloat16;
    q.x = arena.tensor(dt, {2, kM, kK}, dev);
    q.weight = arena.tensor(dt, {kHeads * kHeadDim, kK}, dev);
    q.bias = arena.tensor(dt, {kHeads * kHeadDim}, dev);
    q.out = arena.tensor(dt, {2, kM, kHeads * kHeadDim}, dev);
    q.heads = kHeads;
    q.head_dim = kHeadDim;
    q.row_offset = 28;
    o.a = arena.tensor(dt, {2, kM, kHeads * kHeadDim + kExtra}, dev);
    o.weight = arena.tensor(dt, {kNo, kHeads * kHeadDim + kExtra}, dev);
    o.bias = arena.tensor(dt, {kNo}, dev);
    o.cache = arena.tensor(DType::kFloat32, {2, kM, kNo}, dev);
    o.out = arena.tensor(dt, {2, kM, kNo}, dev);
    o.heads = kHeads;
    o.head_dim = kHeadDim;
    o.row_offset = 28;
    symbols = dense_symbols(SeqLens{2, 128, 64}, kHeads, 32, 32);
    sref = symbols.ref();
    sref.device = dev;
    q.symbols = &sref;
    o.symbols = &sref;
  }

  template <typename P>
  void expect_rejects(const P& base, const std::function<void(P&, SymbolsRef&)>& mutate,
                      const char* name, const char* file, int line) {
    P bad = base;
    SymbolsRef bad_symbols = sref;
    bad.symbols = &bad_symbols;
    mutate(bad, bad_symbols);
    const std::string quoted = std::string("argument '") + name + "'";
    testing::expect_invalid_argument(
        [&] {
          if constexpr (std::is_same_v<P, GemmQParams>) {
            check_gemm_q(bad, device);
          } else {
            check_gemm_o(bad, device, true);
            check_gemm_o(bad, device, false);
          }
        },
        {quoted}, file, line);
  }
};

#define EXPECT_GEMM_Q_REJECTS(fixture, mutation, name)                       \
  (fixture).expect_rejects<GemmQParams>((fixture).q,                         \
                                        [&](GemmQParams& a, SymbolsRef& s) { \
                                          (void)s;                           \
                                          mutation;                          \
                                        },                                   \
                                        name, __FILE__, __LINE__)
#define EXPECT_GEMM_O_REJECTS(fixture, mutation, name)                       \
  (fixture).expect_rejects<GemmOParams>((fixture).o,                         \
                                        [&](GemmOParams& a, SymbolsRef& s) { \
                                          (void)s;                           \
                                          mutation;                          \
                                        },                                   \
                                        name, __FILE__, __LINE__)

TEST(CheckGemm, ValidArgumentsPass) {
  for (Device dev : {Device::kCPU, Device::kCUDA}) {
    GemmFixture f(dev);
    EXPECT_NO_THROW(check_gemm_q(f.q, dev));
    EXPECT_NO_THROW(check_gemm_o(f.o, dev, true));
    EXPECT_NO_THROW(check_gemm_o(f.o, dev, false));
    f.q.symbols = f.o.symbols = nullptr;  // dense
    f.q.bias = f.o.bias = TensorRef{};    // optional
    f.o.cache.dtype = DType::kFloat16;    // the storage dtype is also a valid cache dtype
    EXPECT_NO_THROW(check_gemm_q(f.q, dev));
    EXPECT_NO_THROW(check_gemm_o(f.o, dev, true));
  }
}

TEST(CheckGemm, GemmQArgumentsAreNamed) {
  for (Device dev : {Device::kCPU, Device::kCUDA}) {
    GemmFixture f(dev);
    EXPECT_GEMM_Q_REJECTS(f, a.x.data = nullptr, "x");
    EXPECT_GEMM_Q_REJECTS(f, a.x.dtype = DType::kInt32, "x");
    EXPECT_GEMM_Q_REJECTS(f, a.x.ndim = 1, "x");
    EXPECT_GEMM_Q_REJECTS(f, a.x.stride[2] = 3, "x");
    EXPECT_GEMM_Q_REJECTS(f, a.heads = 0, "heads");
    EXPECT_GEMM_Q_REJECTS(f, a.head_dim = -1, "head_dim");
    EXPECT_GEMM_Q_REJECTS(f, a.weight.data = nullptr, "weight");
    EXPECT_GEMM_Q_REJECTS(f, a.weight.dtype = DType::kBFloat16, "weight");
    EXPECT_GEMM_Q_REJECTS(f, a.weight.shape[1] = kK + 1, "weight");
    EXPECT_GEMM_Q_REJECTS(f, a.heads = 3, "weight");  // 3 * 64 rows expected, 128 given
    EXPECT_GEMM_Q_REJECTS(f, a.bias.shape[0] = 64, "bias");
    EXPECT_GEMM_Q_REJECTS(f, a.bias.dtype = DType::kFloat32, "bias");
    EXPECT_GEMM_Q_REJECTS(f, a.out.data = nullptr, "out");
    EXPECT_GEMM_Q_REJECTS(f, a.out.dtype = DType::kBFloat16, "out");
    EXPECT_GEMM_Q_REJECTS(f, a.out.shape[1] = kM - 1, "out");
    EXPECT_GEMM_Q_REJECTS(f, a.out.device = dev == Device::kCPU ? Device::kCUDA : Device::kCPU,
                          "out");
    EXPECT_GEMM_Q_REJECTS(f, a.row_offset = -1, "row_offset");
    EXPECT_GEMM_Q_REJECTS(f, a.row_offset = 29, "symbols.q_blocks");  // 29 + 100 > 128
    EXPECT_GEMM_Q_REJECTS(f, s.shape.q_blocks = 3, "symbols.q_blocks");
    EXPECT_GEMM_Q_REJECTS(f, s.shape.batch = 1, "symbols.batch");
    EXPECT_GEMM_Q_REJECTS(f, s.shape.heads = 3, "symbols.heads");
    EXPECT_GEMM_Q_REJECTS(f, s.shape.block_q = 30, "symbols.block_q");
    EXPECT_GEMM_Q_REJECTS(f, s.q_bits = nullptr, "symbols.q_bits");
    EXPECT_GEMM_Q_REJECTS(f, s.device = dev == Device::kCPU ? Device::kCUDA : Device::kCPU,
                          "symbols.device");
  }
  GemmFixture gpu(Device::kCUDA);
  EXPECT_GEMM_Q_REJECTS(gpu, a.head_dim = 32; a.heads = 4, "head_dim");
  EXPECT_GEMM_Q_REJECTS(gpu, a.x.data = static_cast<char*>(a.x.data) + 2, "x");
  EXPECT_GEMM_Q_REJECTS(gpu, a.weight.stride[0] = kK + 2, "weight");
  EXPECT_GEMM_Q_REJECTS(
      gpu, a.x.dtype = a.weight.dtype = a.bias.dtype = a.out.dtype = DType::kFloat32, "x");
  GemmFixture cpu(Device::kCPU);
  cpu.q.head_dim = 32;  // any head dim on the CPU
  cpu.q.heads = 4;
  cpu.q.symbols = nullptr;  // the fixture's symbols have 2 heads
  EXPECT_NO_THROW(check_gemm_q(cpu.q, Device::kCPU));
}

TEST(CheckGemm, GemmOUpdateWithoutOutIsCacheOnlyDispatchNeedsOut) {
  for (Device dev : {Device::kCPU, Device::kCUDA}) {
    GemmFixture f(dev);
    f.o.out = TensorRef{};  // gemm.h: a cache-only update
    EXPECT_NO_THROW(check_gemm_o(f.o, dev, true));
    EXPECT_INVALID(check_gemm_o(f.o, dev, false), "argument 'out'");
    // Every other argument is still checked in the cache-only form.
    GemmOParams bad = f.o;
    bad.cache.shape[2] = kNo - 1;
    EXPECT_INVALID(check_gemm_o(bad, dev, true), "argument 'cache'");
    bad = f.o;
    bad.weight.shape[1] = 128;
    EXPECT_INVALID(check_gemm_o(bad, dev, true), "argument 'weight'");
  }
}

TEST(CheckGemm, GemmOArgumentsAreNamed) {
  for (Device dev : {Device::kCPU, Device::kCUDA}) {
    GemmFixture f(dev);
    EXPECT_GEMM_O_REJECTS(f, a.a.data = nullptr, "a");
    EXPECT_GEMM_O_REJECTS(f, a.a.dtype = DType::kUInt8, "a");
    EXPECT_GEMM_O_REJECTS(f, a.a.ndim = 4, "a");
    EXPECT_GEMM_O_REJECTS(f, a.heads = 3, "a");  // 3 * 64 > 160 columns
    EXPECT_GEMM_O_REJECTS(f, a.heads = 0, "heads");
    EXPECT_GEMM_O_REJECTS(f, a.weight.data = nullptr, "weight");
    EXPECT_GEMM_O_REJECTS(f, a.weight.shape[1] = 128, "weight");
    EXPECT_GEMM_O_REJECTS(f, a.weight.ndim = 3, "weight");
    EXPECT_GEMM_O_REJECTS(f, a.bias.shape[0] = kNo + 1, "bias");
    EXPECT_GEMM_O_REJECTS(f, a.cache.data = nullptr, "cache");
    EXPECT_GEMM_O_REJECTS(f, a.cache.dtype = DType::kBFloat16, "cache");
    EXPECT_GEMM_O_REJECTS(f, a.cache.shape[2] = kNo - 1, "cache");
    EXPECT_GEMM_O_REJECTS(f, a.cache.ndim = 2, "cache");
    EXPECT_GEMM_O_REJECTS(f, a.out.data = nullptr, "out");
    EXPECT_GEMM_O_REJECTS(f, a.out.dtype = DType::kFloat32, "out");
    EXPECT_GEMM_O_REJECTS(f, a.out.shape[0] = 1, "out");
    EXPECT_GEMM_O_REJECTS(f, a.out.data = a.cache.data;
                          a.out.dtype = a.cache.dtype = DType::kFloat16,
                          "out");  // aliasing
    EXPECT_GEMM_O_REJECTS(f, a.row_offset = -5, "row_offset");
    EXPECT_GEMM_O_REJECTS(f, a.row_offset = 60, "symbols.q_blocks");
    EXPECT_GEMM_O_REJECTS(f, s.shape.batch = 4, "symbols.batch");
    EXPECT_GEMM_O_REJECTS(f, s.shape.heads = 1, "symbols.heads");
  }
  GemmFixture gpu(Device::kCUDA);
  EXPECT_GEMM_O_REJECTS(gpu, a.cache.data = static_cast<char*>(a.cache.data) + 4, "cache");
  EXPECT_GEMM_O_REJECTS(gpu, a.a.stride[1] = kHeads * kHeadDim + kExtra + 1;
                        a.a.stride[0] = a.a.stride[1] * kM, "a");
}

}  // namespace
}  // namespace flashomni
