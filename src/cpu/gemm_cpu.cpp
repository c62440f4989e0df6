// FlashOmni CPU backend: cpu::gemm_q, cpu::gemm_o_update, cpu::gemm_o_dispatch (spec §3, §4).
// Oracle semantics: every product and sum in double, one rounding at the store. Row tiles follow
// the symbol grid (row m of batch b is token m + row_offset, query block (m + row_offset) /
// block_q), so a tile has one activity bit per head. GEMM-O rounding contract: update stores
// C = bias + cached heads into `cache` (rounded to the cache dtype) and writes
// Y = C_stored + active heads + extra; dispatch computes the same Y from the stored C, so an update
// followed by a dispatch with the same symbols yields bit-identical Y. A cache-only update (out
// not given) runs the same C sums and stores, and skips the active heads, extra columns and Y.
#include <algorithm>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "flashomni/gemm.h"

namespace flashomni::cpu {
namespace {

constexpr int64_t kDenseRows = 128;   // row tile when no symbols are given
constexpr int64_t kColTile = 128;     // GEMM-O output columns per task
constexpr int64_t kInnerChunk = 256;  // reduction slice converted at once (scratch <= 256 KiB)

// A 2-D or 3-D row-major operand: element (b, row, col) at b * s_batch + row * s_row + col.
struct Matrix {
  void* data = nullptr;
  int64_t s_batch = 0, s_row = 0;
  LoadRowFn load = nullptr;
  StoreRowFn store = nullptr;

  int64_t offset(int64_t b, int64_t row) const { return b * s_batch + row * s_row; }
};

Matrix matrix(const TensorRef& t) {
  Matrix m;
  m.data = t.data;
  m.s_batch = t.ndim == 3 ? t.stride[0] : 0;
  m.s_row = t.stride[t.ndim - 2];
  m.load = row_loader(t.dtype);
  m.store = row_storer(t.dtype);
  return m;
}

struct Scratch {
  std::vector<double> x, wt, wrow, acc, acc_c, row;
};

// acc[rows x nt] += A[b, m0 : m0 + rows, k0 : k1] * W[n0 : n0 + nt, k0 : k1]^T.
void add_product(const Matrix& a, int64_t b, int64_t m0, int64_t rows, const Matrix& w, int64_t n0,
                 int64_t nt, int64_t k0, int64_t k1, Scratch& ws, double* acc) {
  for (int64_t c0 = k0; c0 < k1; c0 += kInnerChunk) {
    const int64_t kc = std::min(kInnerChunk, k1 - c0);
    ws.x.resize(rows * kc);
    ws.wt.resize(kc * nt);
    ws.wrow.resize(kc);
    for (int64_t r = 0; r < rows; ++r) a.load(a.data, a.offset(b, m0 + r) + c0, kc, &ws.x[r * kc]);
    for (int64_t n = 0; n < nt; ++n) {
      w.load(w.data, w.offset(0, n0 + n) + c0, kc, ws.wrow.data());
      for (int64_t k = 0; k < kc; ++k) ws.wt[k * nt + n] = ws.wrow[k];
    }
    matmul_acc(rows, kc, nt, ws.x.data(), kc, ws.wt.data(), nt, acc, nt);
  }
}

// Row tiles of the symbol grid (or of kDenseRows rows without symbols).
struct RowTiles {
  int64_t rows = 0, block = kDenseRows, offset = 0, first = 0, count = 0;

  RowTiles(int64_t m, int32_t row_offset, const SymbolsRef* s) : rows(m) {
    if (s != nullptr) {
      block = s->shape.block_q;
      offset = row_offset;
    }
    first = offset / block;
    count = m == 0 ? 0 : (offset + m - 1) / block - first + 1;
  }
  int32_t block_index(int64_t t) const { return static_cast<int32_t>(first + t); }
  int64_t begin(int64_t t) const { return std::max<int64_t>(0, (first + t) * block - offset); }
  int64_t end(int64_t t) const { return std::min(rows, (first + t + 1) * block - offset); }
};

void load_bias(const TensorRef& bias, int64_t n0, int64_t nt, int64_t rows, double* acc,
               Scratch& ws) {
  if (!bias.defined()) {
    std::fill(acc, acc + rows * nt, 0.0);
    return;
  }
  ws.row.resize(nt);
  row_loader(bias.dtype)(bias.data, n0 * bias.stride[0], nt, ws.row.data());
  for (int64_t r = 0; r < rows; ++r) std::copy(ws.row.begin(), ws.row.end(), acc + r * nt);
}

void gemm_o(const GemmOParams& p, bool update) {
  check_gemm_o(p, Device::kCPU, update);
  const Matrix a = matrix(p.a), w = matrix(p.weight), cache = matrix(p.cache), out = matrix(p.out);
  const int64_t batch = p.a.ndim == 3 ? p.a.shape[0] : 1;
  const int64_t m = p.a.shape[p.a.ndim - 2], k = p.a.shape[p.a.ndim - 1];
  const int64_t n = p.weight.shape[0], d = p.head_dim, k_heads = p.heads * d;
  const RowTiles tiles(m, p.row_offset, p.symbols);
  const int64_t col_tiles = (n + kColTile - 1) / kColTile;
  const bool with_out = p.out.defined();  // false: cache-only update (gemm.h)

  parallel_for(batch * tiles.count * col_tiles, [&](int64_t index) {
    thread_local Scratch ws;
    const int64_t ct = index % col_tiles, t = (index / col_tiles) % tiles.count;
    const int64_t b = index / (col_tiles * tiles.count);
    const int64_t m0 = tiles.begin(t), rows = tiles.end(t) - m0;
    const int64_t n0 = ct * kColTile, nt = std::min(kColTile, n - n0);
    const int32_t blk = tiles.block_index(t);
    // Active part (active heads + extra columns) always starts from 0 so update and dispatch sum it
    // in the same order; the cached part goes to acc_c, only in update.
    ws.acc.assign(rows * nt, 0.0);
    if (update) {
      ws.acc_c.resize(rows * nt);
      load_bias(p.bias, n0, nt, rows, ws.acc_c.data(), ws);
    }
    for (int32_t h = 0; h < p.heads; ++h) {
      const bool active =
          p.symbols == nullptr || query_active(*p.symbols, static_cast<int32_t>(b), h, blk);
      if (!active && !update) continue;   // dispatch: its share is already in the cache
      if (active && !with_out) continue;  // cache-only: Y's share is not needed
      add_product(a, b, m0, rows, w, n0, nt, h * d, (h + 1) * d, ws,
                  active ? ws.acc.data() : ws.acc_c.data());
    }
    if (k > k_heads && with_out) {
      add_product(a, b, m0, rows, w, n0, nt, k_heads, k, ws, ws.acc.data());
    }
    ws.row.resize(nt);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t c_off = cache.offset(b, m0 + r) + n0;
      if (update) cache.store(cache.data, c_off, nt, &ws.acc_c[r * nt]);
      if (!with_out) continue;
      cache.load(cache.data, c_off, nt, ws.row.data());  // C as stored: the contract above
      double* y = &ws.acc[r * nt];
      for (int64_t c = 0; c < nt; ++c) y[c] = ws.row[c] + y[c];
      out.store(out.data, out.offset(b, m0 + r) + n0, nt, y);
    }
  });
}

}  // namespace

void gemm_q(const GemmQParams& p) {
  check_gemm_q(p, Device::kCPU);
  const Matrix x = matrix(p.x), w = matrix(p.weight), out = matrix(p.out);
  const int64_t batch = p.x.ndim == 3 ? p.x.shape[0] : 1;
  const int64_t m = p.x.shape[p.x.ndim - 2], k = p.x.shape[p.x.ndim - 1], d = p.head_dim;
  const RowTiles tiles(m, p.row_offset, p.symbols);

  parallel_for(batch * tiles.count * p.heads, [&](int64_t index) {
    thread_local Scratch ws;
    const int32_t h = static_cast<int32_t>(index % p.heads);
    const int64_t t = (index / p.heads) % tiles.count, b = index / (p.heads * tiles.count);
    const int32_t blk = tiles.block_index(t);
    if (p.symbols != nullptr && !query_active(*p.symbols, static_cast<int32_t>(b), h, blk)) {
      return;  // cached tile: not written (attention never reads it)
    }
    const int64_t m0 = tiles.begin(t), rows = tiles.end(t) - m0;
    ws.acc.resize(rows * d);
    load_bias(p.bias, h * d, d, rows, ws.acc.data(), ws);
    add_product(x, b, m0, rows, w, h * d, d, 0, k, ws, ws.acc.data());
    for (int64_t r = 0; r < rows; ++r) {
      out.store(out.data, out.offset(b, m0 + r) + h * d, d, &ws.acc[r * d]);
    }
  });
}

void gemm_o_update(const GemmOParams& p) {
  gemm_o(p, /*update=*/true);
}

void gemm_o_dispatch(const GemmOParams& p) {
  gemm_o(p, /*update=*/false);
}

}  // namespace flashomni::cpu
