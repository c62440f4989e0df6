// FlashOmni CUDA layer (policy), step 3: per-row key skipping (one CTA per (b, h, i): softmax of
// the pooled logits, bitonic sort, threshold prefix, keep rules, Skv words) and per-(b, h) query
// caching (text<->image scores, sort, prefix, Sq words, the head's densities). Semantics are
// those of choose_symbols (policy.h); sums that decide run on one thread in the oracle's order.
#include <algorithm>

#include "cuda/policy/policy_device.cuh"
#include "cuda/runtime.h"

namespace flashomni::cuda::policy {
namespace {

constexpr int32_t kPad = INT32_MAX;  // sort index of padding entries (value +inf): sorts last

// Shared memory of a row CTA: values and indices for the sort, then one keep flag per block.
std::size_t row_smem_bytes(int32_t np) {
  return static_cast<std::size_t>(np) * (sizeof(double) + sizeof(int32_t) + 1);
}

__global__ void rows_kernel(PolicyKernelParams p, int32_t np) {
  extern __shared__ __align__(16) unsigned char smem[];
  double* val = reinterpret_cast<double*>(smem);
  int32_t* idx = reinterpret_cast<int32_t*>(val + np);
  uint8_t* keep = reinterpret_cast<uint8_t*>(idx + np);
  __shared__ double s_max, s_sum;
  __shared__ int32_t s_skip, s_kept;

  const int32_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t row = (static_cast<int64_t>(b) * p.heads + h) * p.q_blocks + i;
  const int32_t kv_words = (p.kv_blocks + 31) / 32;
  uint32_t* words = p.kv_bits + row * kv_words;
  const Request r = load_request(p, b);
  const int32_t nk = r.nk;
  const int32_t lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;

  if (i >= r.nq) {  // padding row of a shorter request: all bits 0
    for (int32_t w = threadIdx.x; w < kv_words; w += blockDim.x) words[w] = 0u;
    if (threadIdx.x == 0) {
      p.kept[row] = 0;
      p.kept_tokens[row] = 0;
      p.i2t[row] = 0.0;
    }
    return;
  }

  // Block probabilities A[i, :] (block_probabilities): softmax of P + log(n_j / block_kv).
  double* logits = p.logits + row * p.kv_blocks;
  const int32_t last_count = nk > 0 ? r.k_count(nk - 1) : 0;
  double last_log_weight = 0.0;
  if (p.weight_by_tokens && last_count != r.bkv && nk > 0) {
    last_log_weight = p.q.cu == nullptr
                          ? p.uniform_last_log_weight
                          : log(ddiv(static_cast<double>(last_count), static_cast<double>(r.bkv)));
  }
  if (threadIdx.x == 0) s_max = -INFINITY;
  __syncthreads();
  double local_max = -INFINITY;
  for (int32_t j = threadIdx.x; j < nk; j += blockDim.x) {
    // Full blocks add log(1) = 0, as the oracle does (x + 0.0 == x for every finite x).
    const double x = dadd(logits[j], j == nk - 1 ? last_log_weight : 0.0);
    val[j] = x;
    local_max = fmax(local_max, x);
  }
  for (int32_t o = 16; o > 0; o >>= 1)
    local_max = fmax(local_max, __shfl_xor_sync(~0u, local_max, o));
  if (lane == 0) {
    // fmax over doubles as a CAS loop on the bits (shared double atomicMax does not exist).
    unsigned long long* addr = reinterpret_cast<unsigned long long*>(&s_max);
    unsigned long long old = *addr;
    while (local_max > __longlong_as_double(old)) {
      const unsigned long long seen = atomicCAS(addr, old, __double_as_longlong(local_max));
      if (seen == old) break;
      old = seen;
    }
  }
  __syncthreads();
  const double m = s_max;
  for (int32_t j = threadIdx.x; j < nk; j += blockDim.x) val[j] = exp(val[j] - m);
  __syncthreads();
  if (threadIdx.x == 0) s_sum = ordered_sum(val, nk);
  __syncthreads();
  const double sum = s_sum;
  for (int32_t j = threadIdx.x; j < nk; j += blockDim.x) val[j] = ddiv(val[j], sum);
  __syncthreads();

  const bool text_row = r.q_text(i) > 0;
  if (p.cache_queries && text_row) {
    // The query kernel reads text rows' A for the text->image scores.
    for (int32_t j = threadIdx.x; j < nk; j += blockDim.x) logits[j] = val[j];
  }
  if (p.cache_queries && !text_row && threadIdx.x == 0) {
    // i2t: mass this image row puts on text keys; blocks without text add exactly 0.
    double acc = 0.0;
    if (r.text_end > r.text_begin) {
      const int32_t j1 = min(nk, (r.text_end + r.bkv - 1) / r.bkv);
      for (int32_t j = r.text_begin / r.bkv; j < j1; ++j) {
        const double x =
            ddiv(static_cast<double>(r.k_text_tokens(j)), static_cast<double>(r.k_count(j)));
        acc = dadd(acc, dmul(val[j], x));
      }
    }
    p.i2t[row] = acc;
  }

  // Key decisions (choose_row).
  const bool keep_all = !p.skip_kv || nk == 0 || (text_row && !p.skip_kv_for_text);
  for (int32_t j = threadIdx.x; j < nk; j += blockDim.x) keep[j] = 1;
  if (!keep_all) {
    for (int32_t j = threadIdx.x; j < np; j += blockDim.x) {
      idx[j] = j < nk ? j : kPad;
      if (j >= nk) val[j] = INFINITY;
    }
    __syncthreads();
    bitonic_sort(val, idx, np);
    if (threadIdx.x == 0) {
      int32_t skip =
          p.kv_top_k > 0 ? max(0, nk - p.kv_top_k) : prefix_within(val, nk, p.kv_threshold);
      s_skip = min(skip, nk - 1);  // the most probable block is always kept
    }
    __syncthreads();
    for (int32_t n = threadIdx.x; n < s_skip; n += blockDim.x) keep[idx[n]] = 0;
    __syncthreads();
    for (int32_t j = threadIdx.x; j < nk; j += blockDim.x) {
      const bool diagonal =
          p.keep_diagonal && overlap(r.q_begin(i), r.q_end(i), r.k_begin(j), r.k_end(j)) > 0;
      const bool text_key = p.keep_text_kv && r.k_text_tokens(j) > 0;
      if (diagonal || text_key) keep[j] = 1;
    }
  }
  if (threadIdx.x == 0) s_kept = 0;
  __syncthreads();

  // Skv words by warp ballots; padding bits past nk stay 0.
  int32_t kept = 0;
  for (int32_t w = warp; w < kv_words; w += warps) {
    const int32_t j = w * 32 + lane;
    const uint32_t bits = __ballot_sync(~0u, j < nk && keep[j] != 0);
    if (lane == 0) {
      words[w] = bits;
      kept += __popc(bits);
    }
  }
  if (lane == 0 && kept > 0) atomicAdd(&s_kept, kept);
  __syncthreads();
  if (threadIdx.x == 0) {
    // Kept key tokens as symbol_densities counts them: the partial last block counts its tokens.
    int64_t tokens = static_cast<int64_t>(s_kept) * r.bkv;
    if (nk > 0 && keep[nk - 1] != 0) tokens -= r.bkv - last_count;
    p.kept[row] = s_kept;
    p.kept_tokens[row] = tokens;
    if (!p.cache_queries || text_row) p.i2t[row] = 0.0;
  }
}

// Shared memory of a query CTA: sort values/indices over the padded image-block count, the two
// score parts per image block, and an active flag per query block.
std::size_t query_smem_bytes(int32_t np, int32_t q_blocks) {
  return static_cast<std::size_t>(np) * (sizeof(double) + sizeof(int32_t)) +
         static_cast<std::size_t>(q_blocks) * (2 * sizeof(double) + 1);
}

constexpr int32_t kQueryThreads = 256;

__global__ void __launch_bounds__(kQueryThreads) queries_kernel(PolicyKernelParams p, int32_t np) {
  extern __shared__ __align__(16) unsigned char smem[];
  double* val = reinterpret_cast<double*>(smem);
  double* t2i = val + np;
  double* i2t = t2i + p.q_blocks;
  int32_t* idx = reinterpret_cast<int32_t*>(i2t + p.q_blocks);
  uint8_t* active = reinterpret_cast<uint8_t*>(idx + np);
  __shared__ double s_t2i, s_i2t;
  __shared__ int32_t s_cached;
  __shared__ unsigned long long s_counts[4];

  const int32_t h = blockIdx.x, b = blockIdx.y;
  const Request r = load_request(p, b);
  const int64_t head_row0 = (static_cast<int64_t>(b) * p.heads + h) * p.q_blocks;
  for (int32_t i = threadIdx.x; i < p.q_blocks; i += blockDim.x) active[i] = i < r.nq;
  const int32_t tb = r.first_text_block(), te = min(r.end_text_block(), r.nq);
  const int32_t n_image = r.nq - (te - tb);
  const auto block_of = [tb, te](int32_t x) { return x < tb ? x : x + (te - tb); };
  // Both scores end alike: with val / idx filled (np entries, pads last), sort ascending and
  // cache the image blocks of the smallest prefix whose share stays within q_threshold.
  const auto cache_lowest = [&]() {
    __syncthreads();
    bitonic_sort(val, idx, np);
    if (threadIdx.x == 0) s_cached = prefix_within(val, n_image, p.q_threshold);
    __syncthreads();
    for (int32_t m = threadIdx.x; m < s_cached; m += blockDim.x) active[block_of(idx[m])] = 0;
  };
  if (p.cache_queries && p.by_change && p.change != nullptr && n_image > 0) {
    // Output change (choose_queries_by_change): c = r / sum r over the image blocks, 0 if the
    // sum is 0; no text needed. Without a previous output (change null) nothing is cached.
    for (int32_t x = threadIdx.x; x < n_image; x += blockDim.x) {
      t2i[x] = p.change[head_row0 + block_of(x)];
    }
    __syncthreads();
    if (threadIdx.x == 0) s_t2i = ordered_sum(t2i, n_image);
    __syncthreads();
    const double sum = s_t2i;
    for (int32_t x = threadIdx.x; x < np; x += blockDim.x) {
      val[x] = x < n_image ? (sum > 0.0 ? ddiv(t2i[x], sum) : 0.0) : INFINITY;
      idx[x] = x < n_image ? x : kPad;
    }
    cache_lowest();
  }
  // Query caching (choose_queries): only with text, image blocks, and caching on.
  if (p.cache_queries && !p.by_change && r.text_end > r.text_begin && n_image > 0) {
    const double text_weight = static_cast<double>(r.text_end - r.text_begin);
    for (int32_t x = threadIdx.x; x < n_image; x += blockDim.x) {
      // t2i: sum over text rows t, then the key blocks j overlapping block i, in that order.
      const int32_t i = block_of(x);
      const int32_t i0 = r.q_begin(i), i1 = r.q_end(i);
      const int32_t j0 = i0 / r.bkv, j1 = min(r.nk, (i1 + r.bkv - 1) / r.bkv);
      double acc = 0.0;
      for (int32_t t = tb; t < te; ++t) {
        const double qt = static_cast<double>(r.q_text(t));
        const double* a = p.logits + (head_row0 + t) * p.kv_blocks;
        for (int32_t j = j0; j < j1; ++j) {
          const int32_t o = overlap(i0, i1, r.k_begin(j), r.k_end(j));
          if (o > 0) {
            const double term = ddiv(dmul(dmul(qt, a[j]), static_cast<double>(o)),
                                     static_cast<double>(r.k_count(j)));
            acc = dadd(acc, term);
          }
        }
      }
      t2i[x] = ddiv(acc, text_weight);
      i2t[x] = p.i2t[head_row0 + i];
    }
    __syncthreads();
    // The two sums run at once on different warps (both in the oracle's order).
    if (threadIdx.x == 0) s_t2i = ordered_sum(t2i, n_image);
    if (threadIdx.x == 32) s_i2t = ordered_sum(i2t, n_image);
    __syncthreads();
    const double st = s_t2i, si = s_i2t;
    const int32_t parts = (st > 0.0) + (si > 0.0);
    if (parts > 0) {
      const double dparts = static_cast<double>(parts);
      for (int32_t x = threadIdx.x; x < np; x += blockDim.x) {
        double score = INFINITY;
        if (x < n_image) {
          score = 0.0;
          if (st > 0.0) score = dadd(score, ddiv(ddiv(t2i[x], st), dparts));
          if (si > 0.0) score = dadd(score, ddiv(ddiv(i2t[x], si), dparts));
        }
        val[x] = score;
        idx[x] = x < n_image ? x : kPad;
      }
      cache_lowest();
    }
  }
  if (threadIdx.x < 4) s_counts[threadIdx.x] = 0;
  __syncthreads();

  // Sq words by warp ballots.
  const int32_t lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int32_t q_words = (p.q_blocks + 31) / 32;
  uint32_t* qw = p.q_bits + (static_cast<int64_t>(b) * p.heads + h) * q_words;
  for (int32_t w = warp; w < q_words; w += warps) {
    const int32_t i = w * 32 + lane;
    const uint32_t bits = __ballot_sync(~0u, i < p.q_blocks && active[i] != 0);
    if (lane == 0) qw[w] = bits;
  }
  if (p.densities == nullptr) return;

  // The head's densities (symbol_densities): integer counts, so any summation order is exact.
  unsigned long long n_active = 0, pairs = 0, q_tokens = 0, token_pairs = 0;
  for (int32_t i = threadIdx.x; i < r.nq; i += blockDim.x) {
    if (!active[i]) continue;
    const int64_t qt = r.q_end(i) - r.q_begin(i);
    ++n_active;
    pairs += static_cast<unsigned long long>(p.kept[head_row0 + i]);
    q_tokens += static_cast<unsigned long long>(qt);
    token_pairs += static_cast<unsigned long long>(qt * p.kept_tokens[head_row0 + i]);
  }
  atomicAdd(&s_counts[0], n_active);
  atomicAdd(&s_counts[1], pairs);
  atomicAdd(&s_counts[2], q_tokens);
  atomicAdd(&s_counts[3], token_pairs);
  __syncthreads();
  if (threadIdx.x != 0) return;
  const auto ratio = [](int64_t num, int64_t den) {
    return den > 0 ? static_cast<double>(num) / static_cast<double>(den) : 0.0;
  };
  SymbolDensity* d = p.densities + static_cast<int64_t>(b) * p.heads + h;
  d->b = b;
  d->h = h;
  d->valid_q_blocks = r.nq;
  d->valid_kv_blocks = r.nk;
  d->active_q_blocks = static_cast<int32_t>(s_counts[0]);
  d->kept_pairs = static_cast<int64_t>(s_counts[1]);
  d->active_q_tokens = static_cast<int64_t>(s_counts[2]);
  d->kept_token_pairs = static_cast<int64_t>(s_counts[3]);
  d->q_tokens = r.lq;
  d->kv_tokens = r.lk;
  d->query_density = ratio(d->active_q_blocks, r.nq);
  d->query_token_density = ratio(d->active_q_tokens, r.lq);
  d->kv_density = ratio(d->kept_pairs, static_cast<int64_t>(d->active_q_blocks) * r.nk);
  d->pair_density = ratio(d->kept_pairs, static_cast<int64_t>(r.nq) * r.nk);
  d->token_pair_density = ratio(d->kept_token_pairs, static_cast<int64_t>(r.lq) * r.lk);
}

}  // namespace

void launch_choose(const PolicyKernelParams& p, cudaStream_t stream) {
  if (p.q_blocks > 0) {  // also with no key block: the row stats must still be written
    const int32_t np = next_pow2(std::max(p.kv_blocks, 1));
    // 128 threads sort up to 256 blocks in 36 barrier stages; larger rows take 256.
    const int32_t threads = np <= 256 ? 128 : 256;
    const std::size_t smem = row_smem_bytes(np);
    static DynamicSmemLimit rows_limit;
    rows_limit.ensure(reinterpret_cast<const void*>(rows_kernel), smem);
    rows_kernel<<<dim3(p.q_blocks, p.heads, p.batch), threads, smem, stream>>>(p, np);
    FLASHOMNI_CUDA_CHECK(cudaGetLastError());
  }
  const int32_t np = next_pow2(std::max(p.q_blocks, 1));
  const std::size_t smem = query_smem_bytes(np, p.q_blocks);
  static DynamicSmemLimit queries_limit;
  queries_limit.ensure(reinterpret_cast<const void*>(queries_kernel), smem);
  queries_kernel<<<dim3(p.heads, p.batch), kQueryThreads, smem, stream>>>(p, np);
  FLASHOMNI_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashomni::cuda::policy
