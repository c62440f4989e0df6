// FlashOmni policy layer: the output-change query score (QueryScore::kOutputChange, issue 5) —
// per (b, h, query block) the relative change of the attention output between the last two
// update steps, summed per head-dim column over tokens, then over columns (policy.h has the
// formula; the GPU kernel in src/cuda/policy/policy_change.cu sums in the same order).
#include <algorithm>
#include <cmath>
#include <vector>

#include "flashomni/numeric.h"
#include "flashomni/policy.h"

namespace flashomni {

std::vector<double> output_change_scores(const TensorRef& out_now, const TensorRef& out_prev,
                                         const SeqLens& seqlens, int32_t block_q) {
  FLASHOMNI_CHECK_ARG(block_q > 0, "block_q", "expected > 0, got ", block_q);
  FLASHOMNI_CHECK_ARG(seqlens.batch > 0, "seqlens.batch", "expected > 0, got ", seqlens.batch);
  const bool varlen = seqlens.cu_seqlens_q != nullptr;
  check_token_tensor(out_now, "out_now", seqlens, SeqSide::kQuery);
  check_token_tensor(out_prev, "out_prev", seqlens, SeqSide::kQuery);
  const int a = varlen ? 0 : 1;  // first per-token axis
  FLASHOMNI_CHECK_ARG(out_prev.shape[a + 1] == out_now.shape[a + 1] &&
                          out_prev.shape[a + 2] == out_now.shape[a + 2],
                      "out_prev", "expected [.., ", out_now.shape[a + 1], ", ",
                      out_now.shape[a + 2], "] heads and dims like out_now, got [.., ",
                      out_prev.shape[a + 1], ", ", out_prev.shape[a + 2], "]");
  const auto heads = static_cast<int32_t>(out_now.shape[a + 1]);
  const auto dim = static_cast<int32_t>(out_now.shape[a + 2]);
  int32_t max_len = 0;
  for (int32_t b = 0; b < seqlens.batch; ++b) max_len = std::max(max_len, seqlens.q_len(b));
  const int32_t blocks = (max_len + block_q - 1) / block_q;
  std::vector<double> change(static_cast<size_t>(seqlens.batch) * heads * blocks, 0.0);
  std::vector<double> n(dim), p(dim);
  const auto offset = [&](const TensorRef& x, int32_t b, int32_t t, int32_t h) {
    return varlen ? (seqlens.cu_seqlens_q[b] + t) * x.stride[0] + h * x.stride[1]
                  : b * x.stride[0] + t * x.stride[1] + h * x.stride[2];
  };
  for (int32_t b = 0; b < seqlens.batch; ++b) {
    const int32_t len = seqlens.q_len(b);
    for (int32_t blk = 0; blk * block_q < len; ++blk) {
      const int32_t t0 = blk * block_q, t1 = std::min(len, t0 + block_q);
      for (int32_t h = 0; h < heads; ++h) {
        // Per-column sums over the tokens first: the GPU's coalesced order (one thread a column).
        std::fill(n.begin(), n.end(), 0.0);
        std::fill(p.begin(), p.end(), 0.0);
        for (int32_t t = t0; t < t1; ++t) {
          const int64_t bn = offset(out_now, b, t, h), bp = offset(out_prev, b, t, h);
          for (int32_t c = 0; c < dim; ++c) {
            const double prev = load_as_double(out_prev.data, out_prev.dtype, bp + c);
            const double diff = load_as_double(out_now.data, out_now.dtype, bn + c) - prev;
            n[c] += diff * diff;
            p[c] += prev * prev;
          }
        }
        double num = 0.0, den = 0.0;
        for (int32_t c = 0; c < dim; ++c) {
          num += n[c];
          den += p[c];
        }
        change[(static_cast<size_t>(b) * heads + h) * blocks + blk] =
            std::sqrt(num) / (std::sqrt(den) + kOutputChangeEps);
      }
    }
  }
  return change;
}

}  // namespace flashomni
