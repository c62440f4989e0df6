// FlashOmni CPU backend: cpu::sparse_attention, the float64 oracle of spec §2.
// One task per (request b, query head h, query block i), i fastest so neighbouring tasks share K/V
// in cache. A task walks only the kept key blocks of its Skv row, converting each block to double
// once (K transposed so every product runs through matmul_acc), and keeps an online softmax in
// double: running max m, running sum l, unnormalised O. Exact up to summation order (about 1e-15
// relative); cached tasks write nothing; a row with no kept key gets O = 0, LSE = -inf.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "flashomni/attention.h"

namespace flashomni::cpu {
namespace {

// Tile used when no symbols are given (dense); symbols bring their own block sizes.
constexpr int32_t kDenseBlock = 128;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Element offset of (request b, token t, head h) in a [B, N, H, d] or varlen [total, H, d] tensor,
// or of (b, h, t) in lse ([B, H, Nq] or [H, total]); `cu` is non-null for varlen.
struct TokenIndexer {
  int64_t s_batch = 0, s_token = 0, s_head = 0;
  const int32_t* cu = nullptr;

  int64_t operator()(int32_t b, int64_t t, int32_t h) const {
    const int64_t row = cu ? cu[b] + t : t;
    return (cu ? 0 : b * s_batch) + row * s_token + h * s_head;
  }
};

TokenIndexer token_indexer(const TensorRef& t, const int32_t* cu) {
  if (cu) return {0, t.stride[0], t.stride[1], cu};
  return {t.stride[0], t.stride[1], t.stride[2], nullptr};
}

TokenIndexer lse_indexer(const TensorRef& t, const int32_t* cu) {
  if (cu) return {0, t.stride[1], t.stride[0], cu};
  return {t.stride[0], t.stride[2], t.stride[1], nullptr};
}

struct Task {
  const AttentionParams* p;
  const SymbolsRef* sym;
  SeqLens lens;
  int32_t heads, group, head_dim, block_q, block_kv, q_blocks;
  double scale;
  TokenIndexer qi, ki, vi, oi, li;
  LoadRowFn load;
  StoreRowFn store;
};

// Per-thread scratch, grown on demand and reused across calls.
struct Scratch {
  std::vector<double> q, kt, krow, v, s, o, m, l;
};

template <typename F>
void for_each_kept_block(const Task& t, int32_t b, int32_t h, int32_t i, int32_t kv_len, F&& f) {
  if (t.sym == nullptr) {
    const int32_t blocks = (kv_len + t.block_kv - 1) / t.block_kv;
    for (int32_t j = 0; j < blocks; ++j) f(j);
    return;
  }
  const SymbolShape& sh = t.sym->shape;
  const uint32_t* row = t.sym->kv_bits + sh.kv_row_index(b, h, i);
  for (int32_t w = 0; w < sh.kv_words(); ++w) {
    for (uint32_t bits = row[w]; bits != 0; bits &= bits - 1) f(w * 32 + __builtin_ctz(bits));
  }
}

void run_task(const Task& t, int64_t index, Scratch& ws) {
  const int32_t i = static_cast<int32_t>(index % t.q_blocks);
  const int32_t h = static_cast<int32_t>((index / t.q_blocks) % t.heads);
  const int32_t b = static_cast<int32_t>(index / (static_cast<int64_t>(t.q_blocks) * t.heads));
  const int32_t q_len = t.lens.q_len(b), kv_len = t.lens.kv_len(b);
  const int64_t r0 = static_cast<int64_t>(i) * t.block_q;
  if (r0 >= q_len) return;  // padded block of a shorter request: no tokens
  if (t.sym != nullptr && !query_active(*t.sym, b, h, i)) return;  // cached: write nothing
  const int64_t rows = std::min<int64_t>(t.block_q, q_len - r0);
  const int64_t d = t.head_dim, bkv = t.block_kv;
  const int32_t kvh = h / t.group;
  const AttentionParams& p = *t.p;

  ws.q.resize(rows * d);
  ws.o.assign(rows * d, 0.0);
  ws.m.assign(rows, kNegInf);
  ws.l.assign(rows, 0.0);
  ws.kt.resize(d * bkv);
  ws.krow.resize(d);
  ws.v.resize(bkv * d);
  ws.s.resize(rows * bkv);
  for (int64_t r = 0; r < rows; ++r) t.load(p.q.data, t.qi(b, r0 + r, h), d, &ws.q[r * d]);

  for_each_kept_block(t, b, h, i, kv_len, [&](int32_t j) {
    const int64_t u0 = static_cast<int64_t>(j) * bkv;
    if (u0 >= kv_len) return;  // cannot happen with validated symbols; harmless if it did
    const int64_t n = std::min<int64_t>(bkv, kv_len - u0);
    for (int64_t u = 0; u < n; ++u) {
      t.load(p.k.data, t.ki(b, u0 + u, kvh), d, ws.krow.data());
      for (int64_t c = 0; c < d; ++c) ws.kt[c * n + u] = ws.krow[c];
      t.load(p.v.data, t.vi(b, u0 + u, kvh), d, &ws.v[u * d]);
    }
    std::fill(ws.s.begin(), ws.s.begin() + rows * n, 0.0);
    matmul_acc(rows, d, n, ws.q.data(), d, ws.kt.data(), n, ws.s.data(), n);
    for (int64_t r = 0; r < rows; ++r) {
      double* s = &ws.s[r * n];
      double tile_max = kNegInf;
      for (int64_t u = 0; u < n; ++u) {
        s[u] *= t.scale;
        tile_max = std::max(tile_max, s[u]);
      }
      const double m_new = std::max(ws.m[r], tile_max);
      if (m_new == kNegInf) {  // every logit -inf so far (overflow only): contributes nothing
        std::fill(s, s + n, 0.0);
        continue;
      }
      const double alpha = std::exp(ws.m[r] - m_new);  // exp(-inf) = 0 on the first block
      double sum = 0.0;
      for (int64_t u = 0; u < n; ++u) {
        s[u] = std::exp(s[u] - m_new);
        sum += s[u];
      }
      ws.l[r] = ws.l[r] * alpha + sum;
      ws.m[r] = m_new;
      if (alpha != 1.0) {
        for (int64_t c = 0; c < d; ++c) ws.o[r * d + c] *= alpha;
      }
    }
    matmul_acc(rows, n, d, ws.s.data(), n, ws.v.data(), d, ws.o.data(), d);
  });

  float* lse = p.lse.defined() ? p.lse.ptr<float>() : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    double* o = &ws.o[r * d];
    double row_lse = kNegInf;
    if (ws.m[r] == kNegInf) {
      std::fill(o, o + d, 0.0);  // no kept key: O = 0, LSE = -inf (spec §2)
    } else {
      const double inv = 1.0 / ws.l[r];
      for (int64_t c = 0; c < d; ++c) o[c] *= inv;
      row_lse = ws.m[r] + std::log(ws.l[r]);
    }
    t.store(p.out.data, t.oi(b, r0 + r, h), d, o);
    if (lse) lse[t.li(b, r0 + r, h)] = static_cast<float>(row_lse);
  }
}

}  // namespace

void sparse_attention(const AttentionParams& p) {
  const AttentionProblem prob = check_attention(p, Device::kCPU);
  Task t;
  t.p = &p;
  t.sym = p.symbols;
  const int32_t* cu_q = prob.varlen ? p.cu_seqlens_q.ptr<const int32_t>() : nullptr;
  const int32_t* cu_kv = prob.varlen ? p.cu_seqlens_kv.ptr<const int32_t>() : nullptr;
  t.lens = SeqLens{prob.batch, prob.max_seqlen_q, prob.max_seqlen_kv, cu_q, cu_kv};
  t.heads = prob.heads;
  t.group = prob.heads / prob.kv_heads;
  t.head_dim = prob.head_dim;
  t.block_q = p.symbols ? p.symbols->shape.block_q : kDenseBlock;
  t.block_kv = p.symbols ? p.symbols->shape.block_kv : kDenseBlock;
  t.q_blocks = (prob.max_seqlen_q + t.block_q - 1) / t.block_q;
  t.scale = prob.softmax_scale;
  t.qi = token_indexer(p.q, cu_q);
  t.ki = token_indexer(p.k, cu_kv);
  t.vi = token_indexer(p.v, cu_kv);
  t.oi = token_indexer(p.out, cu_q);
  if (p.lse.defined()) t.li = lse_indexer(p.lse, cu_q);
  t.load = row_loader(p.q.dtype);
  t.store = row_storer(p.out.dtype);
  if (t.q_blocks == 0) return;

  const int64_t tasks = static_cast<int64_t>(prob.batch) * prob.heads * t.q_blocks;
  parallel_for(tasks, [&t](int64_t index) {
    thread_local Scratch scratch;
    run_task(t, index, scratch);
  });
}

}  // namespace flashomni::cpu
