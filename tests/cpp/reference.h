// FlashOmni tests: naive float64 references for spec §2–4, written to be obviously right, not fast.
// Inputs are plain packed double arrays holding the values the kernels see (already rounded to the
// storage dtype); symbols are first expanded to token-level boolean masks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "flashomni/symbols.h"

namespace flashomni::reference {

// Packed varlen layout for every mode: q [total_q, H, d], k/v [total_kv, Hkv, d]; a uniform batch
// of N tokens is cu = {0, N, 2N, ...}.
struct AttentionInput {
  int batch = 0, heads = 0, kv_heads = 0, head_dim = 0;
  std::vector<int32_t> cu_q, cu_kv;
  std::vector<double> q, k, v;
  double scale = 0.0;
};

// Token-level masks: row_active[(b*H + h)*max_q + t], key_kept[((b*H + h)*max_q + t)*max_kv + u].
struct TokenMask {
  int max_q = 0, max_kv = 0;
  std::vector<uint8_t> row_active, key_kept;
};

inline TokenMask expand_symbols(const AttentionInput& in, const Symbols* symbols) {
  TokenMask m;
  for (int b = 0; b < in.batch; ++b) {
    m.max_q = std::max(m.max_q, in.cu_q[b + 1] - in.cu_q[b]);
    m.max_kv = std::max(m.max_kv, in.cu_kv[b + 1] - in.cu_kv[b]);
  }
  const int64_t rows = static_cast<int64_t>(in.batch) * in.heads * m.max_q;
  m.row_active.assign(rows, 0);
  m.key_kept.assign(rows * m.max_kv, 0);
  for (int b = 0; b < in.batch; ++b) {
    for (int h = 0; h < in.heads; ++h) {
      for (int t = 0; t < in.cu_q[b + 1] - in.cu_q[b]; ++t) {
        const int64_t row = (static_cast<int64_t>(b) * in.heads + h) * m.max_q + t;
        const int i = symbols ? t / symbols->shape().block_q : 0;
        m.row_active[row] = symbols == nullptr || symbols->query(b, h, i);
        for (int u = 0; u < in.cu_kv[b + 1] - in.cu_kv[b]; ++u) {
          const bool kept =
              symbols == nullptr || symbols->kv(b, h, i, u / symbols->shape().block_kv);
          m.key_kept[row * m.max_kv + u] = kept;
        }
      }
    }
  }
  return m;
}

struct AttentionOutput {
  std::vector<double> out;       // [total_q, H, d]
  std::vector<double> lse;       // [H, total_q]
  std::vector<uint8_t> written;  // [total_q, H]: 0 where the row is cached (not written)
};

inline AttentionOutput attention(const AttentionInput& in, const TokenMask& mask) {
  const int H = in.heads, d = in.head_dim, g = in.heads / in.kv_heads;
  const int total_q = in.cu_q[in.batch];
  AttentionOutput r;
  r.out.assign(static_cast<size_t>(total_q) * H * d, 0.0);
  r.lse.assign(static_cast<size_t>(H) * total_q, 0.0);
  r.written.assign(static_cast<size_t>(total_q) * H, 0);
  for (int b = 0; b < in.batch; ++b) {
    for (int h = 0; h < H; ++h) {
      for (int t = 0; t < in.cu_q[b + 1] - in.cu_q[b]; ++t) {
        const int64_t mrow = (static_cast<int64_t>(b) * H + h) * mask.max_q + t;
        if (!mask.row_active[mrow]) continue;
        const int tq = in.cu_q[b] + t;
        r.written[tq * H + h] = 1;
        std::vector<double> s;
        std::vector<int> keys;
        for (int u = 0; u < in.cu_kv[b + 1] - in.cu_kv[b]; ++u) {
          if (!mask.key_kept[mrow * mask.max_kv + u]) continue;
          const int tk = in.cu_kv[b] + u;
          double dot = 0.0;
          for (int c = 0; c < d; ++c) {
            dot += in.q[(static_cast<int64_t>(tq) * H + h) * d + c] *
                   in.k[(static_cast<int64_t>(tk) * in.kv_heads + h / g) * d + c];
          }
          s.push_back(in.scale * dot);
          keys.push_back(tk);
        }
        double* o = &r.out[(static_cast<int64_t>(tq) * H + h) * d];
        if (keys.empty()) {
          r.lse[static_cast<int64_t>(h) * total_q + tq] = -std::numeric_limits<double>::infinity();
          continue;  // o stays 0
        }
        double mx = s[0];
        for (double x : s) mx = std::max(mx, x);
        double z = 0.0;
        for (size_t n = 0; n < keys.size(); ++n) {
          const double p = std::exp(s[n] - mx);
          z += p;
          for (int c = 0; c < d; ++c) {
            o[c] += p * in.v[(static_cast<int64_t>(keys[n]) * in.kv_heads + h / g) * d + c];
          }
        }
        for (int c = 0; c < d; ++c) o[c] /= z;
        r.lse[static_cast<int64_t>(h) * total_q + tq] = mx + std::log(z);
      }
    }
  }
  return r;
}

// y[b][m][n] = sum_{k in [k0, k1)} a[b][m][k] * w[n][k]  (a [B, M, K], w [N, K], y [B, M, N]).
inline void add_matmul(const std::vector<double>& a, const std::vector<double>& w, int batch, int M,
                       int K, int N, int k0, int k1, std::vector<double>& y) {
  for (int b = 0; b < batch; ++b) {
    for (int m = 0; m < M; ++m) {
      for (int n = 0; n < N; ++n) {
        double sum = 0.0;
        for (int k = k0; k < k1; ++k) {
          sum += a[(static_cast<int64_t>(b) * M + m) * K + k] * w[static_cast<int64_t>(n) * K + k];
        }
        y[(static_cast<int64_t>(b) * M + m) * N + n] += sum;
      }
    }
  }
}

}  // namespace flashomni::reference
