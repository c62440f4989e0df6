// FlashOmni policy layer, steps 1–2: block pooling of Q/K and the pooled logits; phi(s).
#include <algorithm>
#include <cmath>
#include <limits>

#include "flashomni/numeric.h"
#include "flashomni/policy.h"

namespace flashomni {
namespace {

int32_t side_len(const SeqLens& s, SeqSide side, int32_t b) {
  return side == SeqSide::kQuery ? s.q_len(b) : s.kv_len(b);
}

const int32_t* side_offsets(const SeqLens& s, SeqSide side) {
  return side == SeqSide::kQuery ? s.cu_seqlens_q : s.cu_seqlens_kv;
}

int32_t side_max_len(const SeqLens& s, SeqSide side) {
  int32_t m = 0;
  for (int32_t b = 0; b < s.batch; ++b) m = std::max(m, side_len(s, side, b));
  return m;
}

}  // namespace

void check_token_tensor(const TensorRef& x, const char* name, const SeqLens& seqlens,
                        SeqSide side) {
  check_defined(x, name);
  check_device(x, name, Device::kCPU);
  check_dtype(x, name, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16});
  check_last_dim_contiguous(x, name);
  const int32_t* cu = side_offsets(seqlens, side);
  const char* cu_name = side == SeqSide::kQuery ? "cu_seqlens_q" : "cu_seqlens_kv";
  check_ndim(x, name, {cu != nullptr ? 3 : 4});
  if (cu != nullptr) {
    for (int32_t b = 0; b < seqlens.batch; ++b) {
      FLASHOMNI_CHECK_ARG(cu[b] >= 0 && cu[b + 1] >= cu[b], cu_name,
                          "expected non-decreasing offsets from 0, entry ", b + 1, " is ",
                          cu[b + 1]);
    }
    FLASHOMNI_CHECK_ARG(x.shape[0] >= cu[seqlens.batch], name, "expected at least ",
                        cu[seqlens.batch], " tokens, got ", x.shape[0]);
  } else {
    FLASHOMNI_CHECK_ARG(x.shape[0] == seqlens.batch, name, "expected batch ", seqlens.batch,
                        ", got ", x.shape[0]);
    FLASHOMNI_CHECK_ARG(x.shape[1] == side_len(seqlens, side, 0), name, "expected ",
                        side_len(seqlens, side, 0), " tokens, got ", x.shape[1]);
  }
}

double policy_phi(int32_t step, int32_t num_steps) {
  FLASHOMNI_CHECK_ARG(num_steps > 0, "num_steps", "expected > 0, got ", num_steps);
  FLASHOMNI_CHECK_ARG(step >= 0 && step < num_steps, "step", "expected in [0, ", num_steps,
                      "), got ", step);
  const double r = static_cast<double>(step) / num_steps;
  return r * r;
}

PooledBlocks pool_blocks(const TensorRef& x, const SeqLens& seqlens, SeqSide side, int32_t block) {
  const char* name = side == SeqSide::kQuery ? "q" : "k";
  FLASHOMNI_CHECK_ARG(block > 0, "block", "expected > 0, got ", block);
  FLASHOMNI_CHECK_ARG(seqlens.batch > 0, "seqlens.batch", "expected > 0, got ", seqlens.batch);
  check_token_tensor(x, name, seqlens, side);
  const int32_t* cu = side_offsets(seqlens, side);
  const bool varlen = cu != nullptr;
  const int a = varlen ? 0 : 1;  // first per-token axis
  PooledBlocks p;
  p.batch = seqlens.batch;
  p.heads = static_cast<int32_t>(x.shape[a + 1]);
  p.head_dim = static_cast<int32_t>(x.shape[a + 2]);
  p.block = block;
  p.blocks = (side_max_len(seqlens, side) + block - 1) / block;
  p.mean.assign(static_cast<size_t>(p.batch) * p.heads * p.blocks * p.head_dim, 0.0);
  p.count.assign(static_cast<size_t>(p.batch) * p.blocks, 0);
  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t len = side_len(seqlens, side, b);
    for (int32_t blk = 0; blk * block < len; ++blk) {
      const int32_t t0 = blk * block, t1 = std::min(len, t0 + block);
      p.count[static_cast<size_t>(b) * p.blocks + blk] = t1 - t0;
      for (int32_t h = 0; h < p.heads; ++h) {
        double* m = &p.mean[((static_cast<size_t>(b) * p.heads + h) * p.blocks + blk) * p.head_dim];
        for (int32_t t = t0; t < t1; ++t) {
          const int64_t base = varlen ? (cu[b] + t) * x.stride[0] + h * x.stride[1]
                                      : b * x.stride[0] + t * x.stride[1] + h * x.stride[2];
          for (int32_t c = 0; c < p.head_dim; ++c)
            m[c] += load_as_double(x.data, x.dtype, base + c);
        }
        for (int32_t c = 0; c < p.head_dim; ++c) m[c] /= (t1 - t0);
      }
    }
  }
  return p;
}

std::vector<double> pooled_logits(const PooledBlocks& q, const PooledBlocks& k, double scale) {
  FLASHOMNI_CHECK_ARG(q.batch == k.batch, "k", "expected batch ", q.batch, ", got ", k.batch);
  FLASHOMNI_CHECK_ARG(q.head_dim == k.head_dim, "k", "expected head_dim ", q.head_dim, ", got ",
                      k.head_dim);
  FLASHOMNI_CHECK_ARG(k.heads > 0 && q.heads % k.heads == 0, "k", "expected kv heads dividing the ",
                      q.heads, " query heads, got ", k.heads);
  if (scale <= 0.0) scale = 1.0 / std::sqrt(static_cast<double>(q.head_dim));
  const int32_t group = q.heads / k.heads;
  const int32_t d = q.head_dim;
  std::vector<double> logits(static_cast<size_t>(q.batch) * q.heads * q.blocks * k.blocks,
                             -std::numeric_limits<double>::infinity());
  for (int32_t b = 0; b < q.batch; ++b) {
    for (int32_t h = 0; h < q.heads; ++h) {
      const int32_t hk = h / group;
      for (int32_t i = 0; i < q.blocks; ++i) {
        if (q.count[static_cast<size_t>(b) * q.blocks + i] == 0) continue;
        const double* qi = &q.mean[((static_cast<size_t>(b) * q.heads + h) * q.blocks + i) * d];
        double* row = &logits[((static_cast<size_t>(b) * q.heads + h) * q.blocks + i) * k.blocks];
        for (int32_t j = 0; j < k.blocks; ++j) {
          if (k.count[static_cast<size_t>(b) * k.blocks + j] == 0) continue;
          const double* kj = &k.mean[((static_cast<size_t>(b) * k.heads + hk) * k.blocks + j) * d];
          double dot = 0.0;
          for (int32_t c = 0; c < d; ++c) dot += qi[c] * kj[c];
          row[j] = dot * scale;
        }
      }
    }
  }
  return logits;
}

}  // namespace flashomni
