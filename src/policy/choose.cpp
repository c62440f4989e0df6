// FlashOmni policy layer, step 3: per-row key-block skipping and per-head query-block caching
// from pooled logits (semantics documented on choose_symbols in policy.h), and run_policy.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "flashomni/policy.h"

namespace flashomni {
namespace {

int32_t overlap(int32_t a0, int32_t a1, int32_t b0, int32_t b1) {
  return std::max(0, std::min(a1, b1) - std::max(a0, b0));
}

// Indices 0..n-1 sorted by value ascending, ties by lower index first (a stable sort).
std::vector<int32_t> ascending_order(const double* values, int32_t n) {
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [values](int32_t a, int32_t b) { return values[a] < values[b]; });
  return order;
}

// Length of the longest ascending prefix whose cumulative value is <= threshold.
int32_t prefix_within(const double* values, const std::vector<int32_t>& order, double threshold) {
  double cum = 0.0;
  int32_t n = 0;
  for (int32_t idx : order) {
    cum += values[idx];
    if (cum > threshold) break;
    ++n;
  }
  return n;
}

// The token geometry of one request, shared by every head.
struct Request {
  int32_t lq = 0, lk = 0, nq = 0, nk = 0, bq = 0, bkv = 0;
  TextRange text;
  std::vector<int32_t> q_text;   // [nq] text tokens in query block i
  std::vector<int32_t> k_count;  // [nk] valid tokens in key block j
  std::vector<double> k_text;    // [nk] fraction of key block j's tokens that are text

  int32_t q_begin(int32_t i) const { return i * bq; }
  int32_t q_end(int32_t i) const { return std::min(lq, (i + 1) * bq); }
  int32_t k_begin(int32_t j) const { return j * bkv; }
  int32_t k_end(int32_t j) const { return std::min(lk, (j + 1) * bkv); }
};

Request describe_request(const SymbolShape& shape, const SeqLens& seqlens, TextRange text,
                         int32_t b) {
  Request r;
  r.lq = seqlens.q_len(b);
  r.lk = seqlens.kv_len(b);
  r.bq = shape.block_q;
  r.bkv = shape.block_kv;
  r.nq = (r.lq + r.bq - 1) / r.bq;
  r.nk = (r.lk + r.bkv - 1) / r.bkv;
  FLASHOMNI_CHECK_ARG(r.lq >= 0 && r.lk >= 0, "seqlens", "negative length in request ", b);
  FLASHOMNI_CHECK_ARG(r.nq <= shape.q_blocks && r.nk <= shape.kv_blocks, "shape",
                      "expected at least ", r.nq, " x ", r.nk, " blocks for request ", b, ", got ",
                      shape.q_blocks, " x ", shape.kv_blocks);
  FLASHOMNI_CHECK_ARG(text.begin >= 0 && text.begin <= text.end && text.end <= r.lq, "text",
                      "expected 0 <= begin <= end <= ", r.lq, " for request ", b, ", got [",
                      text.begin, ", ", text.end, ")");
  r.text = text;
  r.q_text.resize(r.nq);
  for (int32_t i = 0; i < r.nq; ++i) {
    r.q_text[i] = overlap(r.q_begin(i), r.q_end(i), text.begin, text.end);
  }
  r.k_count.resize(r.nk);
  r.k_text.resize(r.nk);
  for (int32_t j = 0; j < r.nk; ++j) {
    r.k_count[j] = r.k_end(j) - r.k_begin(j);
    r.k_text[j] =
        static_cast<double>(overlap(r.k_begin(j), r.k_end(j), text.begin, text.end)) / r.k_count[j];
  }
  return r;
}

// Block probabilities A[i, j] of one (b, h): row softmax over the request's valid key blocks.
std::vector<double> block_probabilities(const double* logits, int32_t kv_blocks, const Request& r,
                                        bool weight_by_tokens) {
  std::vector<double> a(static_cast<size_t>(r.nq) * r.nk, 0.0);
  for (int32_t i = 0; i < r.nq; ++i) {
    const double* p = logits + static_cast<size_t>(i) * kv_blocks;
    double* row = &a[static_cast<size_t>(i) * r.nk];
    double m = -INFINITY;
    for (int32_t j = 0; j < r.nk; ++j) {
      FLASHOMNI_CHECK_ARG(!std::isnan(p[j]) && p[j] != INFINITY, "logits",
                          "expected finite pooled logits (NaN or inf in Q/K?), got ", p[j]);
      row[j] = p[j] + (weight_by_tokens ? std::log(static_cast<double>(r.k_count[j]) / r.bkv) : 0);
      m = std::max(m, row[j]);
    }
    FLASHOMNI_CHECK_ARG(r.nk == 0 || std::isfinite(m), "logits",
                        "expected a finite pooled logit in every row, got all -inf");
    double sum = 0.0;
    for (int32_t j = 0; j < r.nk; ++j) sum += (row[j] = std::exp(row[j] - m));
    for (int32_t j = 0; j < r.nk; ++j) row[j] /= sum;
  }
  return a;
}

// Key decisions of one row; kept[j] = 1 for kept blocks.
void choose_row(const double* a, int32_t i, const Request& r, double threshold,
                const PolicyConfig& c, std::vector<uint8_t>& kept) {
  kept.assign(r.nk, 1);
  const bool text_row = r.q_text[i] > 0;
  if (!c.skip_kv || r.nk == 0 || (text_row && !c.skip_kv_for_text)) return;
  const std::vector<int32_t> order = ascending_order(a, r.nk);
  // The last entry of `order` is the most probable block: never skipped.
  int32_t skip =
      c.kv_top_k > 0 ? std::max(0, r.nk - c.kv_top_k) : prefix_within(a, order, threshold);
  skip = std::min(skip, r.nk - 1);
  for (int32_t n = 0; n < skip; ++n) kept[order[n]] = 0;
  if (c.keep_diagonal) {
    for (int32_t j = 0; j < r.nk; ++j) {
      if (overlap(r.q_begin(i), r.q_end(i), r.k_begin(j), r.k_end(j)) > 0) kept[j] = 1;
    }
  }
  if (c.keep_text_kv) {
    for (int32_t j = 0; j < r.nk; ++j) {
      if (r.k_text[j] > 0.0) kept[j] = 1;
    }
  }
}

// Query decisions of one (b, h): active[i] = 0 for cached blocks.
void choose_queries(const std::vector<double>& a, const Request& r, double threshold,
                    std::vector<uint8_t>& active) {
  active.assign(r.nq, 1);
  std::vector<int32_t> image;  // query blocks without a text token
  for (int32_t i = 0; i < r.nq; ++i) {
    if (r.q_text[i] == 0) image.push_back(i);
  }
  const int32_t n = static_cast<int32_t>(image.size());
  if (n == 0 || r.text.size() == 0) return;
  // t2i: mass the text queries (weighted by their text tokens) put on each image block's tokens.
  std::vector<double> t2i(n, 0.0), i2t(n, 0.0);
  double text_weight = 0.0;
  for (int32_t t = 0; t < r.nq; ++t) text_weight += r.q_text[t];
  for (int32_t t = 0; t < r.nq; ++t) {
    if (r.q_text[t] == 0) continue;
    const double* row = &a[static_cast<size_t>(t) * r.nk];
    for (int32_t x = 0; x < n; ++x) {
      const int32_t i = image[x];
      for (int32_t j = 0; j < r.nk; ++j) {
        const int32_t o = overlap(r.q_begin(i), r.q_end(i), r.k_begin(j), r.k_end(j));
        if (o > 0) t2i[x] += r.q_text[t] * row[j] * o / r.k_count[j];
      }
    }
  }
  for (double& v : t2i) v /= text_weight;
  // i2t: mass each image block puts on text keys.
  for (int32_t x = 0; x < n; ++x) {
    const double* row = &a[static_cast<size_t>(image[x]) * r.nk];
    for (int32_t j = 0; j < r.nk; ++j) i2t[x] += row[j] * r.k_text[j];
  }
  const double s_t2i = std::accumulate(t2i.begin(), t2i.end(), 0.0);
  const double s_i2t = std::accumulate(i2t.begin(), i2t.end(), 0.0);
  const int parts = (s_t2i > 0.0) + (s_i2t > 0.0);
  if (parts == 0) return;
  std::vector<double> score(n, 0.0);
  for (int32_t x = 0; x < n; ++x) {
    if (s_t2i > 0.0) score[x] += t2i[x] / s_t2i / parts;
    if (s_i2t > 0.0) score[x] += i2t[x] / s_i2t / parts;
  }
  const std::vector<int32_t> order = ascending_order(score.data(), n);
  const int32_t cached = prefix_within(score.data(), order, threshold);
  for (int32_t m = 0; m < cached; ++m) active[image[order[m]]] = 0;
}

// Query decisions of one (b, h) from the output change r[i] of its blocks (QueryScore::
// kOutputChange): c = r / sum r over the image blocks (all 0 if the sum is 0), same sort and
// prefix.
void choose_queries_by_change(const double* change, const Request& r, double threshold,
                              std::vector<uint8_t>& active) {
  active.assign(r.nq, 1);
  std::vector<int32_t> image;
  for (int32_t i = 0; i < r.nq; ++i) {
    if (r.q_text[i] == 0) image.push_back(i);
  }
  const auto n = static_cast<int32_t>(image.size());
  if (n == 0) return;
  double sum = 0.0;
  for (int32_t x = 0; x < n; ++x) sum += change[image[x]];
  std::vector<double> score(n, 0.0);
  for (int32_t x = 0; x < n; ++x) score[x] = sum > 0.0 ? change[image[x]] / sum : 0.0;
  const std::vector<int32_t> order = ascending_order(score.data(), n);
  const int32_t cached = prefix_within(score.data(), order, threshold);
  for (int32_t m = 0; m < cached; ++m) active[image[order[m]]] = 0;
}

}  // namespace

void check_policy_config(const PolicyConfig& c, int32_t step) {
  FLASHOMNI_CHECK_ARG(c.tau_q >= 0.0 && std::isfinite(c.tau_q), "config.tau_q",
                      "expected a finite value >= 0, got ", c.tau_q);
  FLASHOMNI_CHECK_ARG(c.tau_kv >= 0.0 && std::isfinite(c.tau_kv), "config.tau_kv",
                      "expected a finite value >= 0, got ", c.tau_kv);
  FLASHOMNI_CHECK_ARG(c.kv_top_k >= 0, "config.kv_top_k", "expected >= 0, got ", c.kv_top_k);
  FLASHOMNI_CHECK_ARG(std::isfinite(c.softmax_scale) && c.softmax_scale >= 0.0f,
                      "config.softmax_scale", "expected a finite value >= 0, got ",
                      c.softmax_scale);
  FLASHOMNI_CHECK_ARG(c.num_steps > 0, "config.num_steps", "expected > 0, got ", c.num_steps);
  FLASHOMNI_CHECK_ARG(step >= 0 && step < c.num_steps, "step", "expected in [0, ", c.num_steps,
                      "), got ", step);
}

PolicyResult choose_symbols(const std::vector<double>& logits, const SymbolShape& shape,
                            const SeqLens& seqlens, const std::vector<TextRange>& text,
                            int32_t step, const PolicyConfig& config) {
  return choose_symbols(logits, shape, seqlens, text, step, config, nullptr);
}

PolicyResult choose_symbols(const std::vector<double>& logits, const SymbolShape& shape,
                            const SeqLens& seqlens, const std::vector<TextRange>& text,
                            int32_t step, const PolicyConfig& config,
                            const std::vector<double>* output_change) {
  check_policy_config(config, step);
  FLASHOMNI_CHECK_ARG(shape.batch == seqlens.batch && shape.batch > 0, "shape.batch", "expected ",
                      seqlens.batch, " (> 0), got ", shape.batch);
  FLASHOMNI_CHECK_ARG(shape.heads > 0, "shape.heads", "expected > 0, got ", shape.heads);
  FLASHOMNI_CHECK_ARG(shape.block_q > 0 && shape.block_kv > 0, "shape.block_q",
                      "expected positive block sizes, got ", shape.block_q, " x ", shape.block_kv);
  const size_t expect =
      static_cast<size_t>(shape.batch) * shape.heads * shape.q_blocks * shape.kv_blocks;
  FLASHOMNI_CHECK_ARG(logits.size() == expect, "logits", "expected ", expect,
                      " entries [B, H, q_blocks, kv_blocks], got ", logits.size());
  FLASHOMNI_CHECK_ARG(text.size() <= 1 || text.size() == static_cast<size_t>(shape.batch), "text",
                      "expected 0, 1 or ", shape.batch, " ranges, got ", text.size());
  const bool by_change = config.query_score == QueryScore::kOutputChange;
  if (output_change != nullptr) {
    const size_t rows = static_cast<size_t>(shape.batch) * shape.heads * shape.q_blocks;
    FLASHOMNI_CHECK_ARG(output_change->size() == rows, "output_change", "expected ", rows,
                        " entries [B, H, q_blocks], got ", output_change->size());
  }
  const double phi = policy_phi(step, config.num_steps);
  const double kv_threshold = config.tau_kv * phi;
  const double q_threshold = config.tau_q * phi;

  PolicyResult result;
  result.symbols = Symbols(shape);
  std::vector<uint8_t> kept, active;
  for (int32_t b = 0; b < shape.batch; ++b) {
    const TextRange tr = text.empty() ? TextRange{} : text[text.size() == 1 ? 0 : b];
    const Request r = describe_request(shape, seqlens, tr, b);
    if (config.cache_queries) {
      FLASHOMNI_CHECK_ARG(r.lq == r.lk, "seqlens",
                          "query caching needs joint attention "
                          "(seqlen_q == seqlen_kv); request ",
                          b, " has ", r.lq, " vs ", r.lk, " (set config.cache_queries = false)");
    }
    for (int32_t h = 0; h < shape.heads; ++h) {
      const double* p =
          &logits[(static_cast<size_t>(b) * shape.heads + h) * shape.q_blocks * shape.kv_blocks];
      const std::vector<double> a =
          block_probabilities(p, shape.kv_blocks, r, config.weight_by_tokens);
      if (config.cache_queries && by_change) {
        if (output_change != nullptr) {
          choose_queries_by_change(
              &(*output_change)[(static_cast<size_t>(b) * shape.heads + h) * shape.q_blocks], r,
              q_threshold, active);
        } else {
          active.assign(r.nq, 1);  // no previous update's output yet: nothing cached
        }
      } else if (config.cache_queries) {
        choose_queries(a, r, q_threshold, active);
      } else {
        active.assign(r.nq, 1);
      }
      for (int32_t i = 0; i < r.nq; ++i) {
        result.symbols.set_query(b, h, i, active[i] != 0);
        choose_row(&a[static_cast<size_t>(i) * r.nk], i, r, kv_threshold, config, kept);
        for (int32_t j = 0; j < r.nk; ++j) result.symbols.set_kv(b, h, i, j, kept[j] != 0);
      }
    }
  }
  result.density = symbol_density_summary(result.symbols.ref(), seqlens);
  return result;
}

PolicyResult run_policy(const PolicyParams& p) {
  check_policy_config(p.config, p.step);
  const PooledBlocks qbar = pool_blocks(p.q, p.seqlens, SeqSide::kQuery, p.block_q);
  const PooledBlocks kbar = pool_blocks(p.k, p.seqlens, SeqSide::kKey, p.block_kv);
  const std::vector<double> logits = pooled_logits(qbar, kbar, p.config.softmax_scale);
  SymbolShape shape;
  shape.batch = p.seqlens.batch;
  shape.heads = qbar.heads;
  shape.q_blocks = qbar.blocks;
  shape.kv_blocks = kbar.blocks;
  shape.block_q = p.block_q;
  shape.block_kv = p.block_kv;
  if (p.config.cache_queries && p.config.query_score == QueryScore::kOutputChange) {
    FLASHOMNI_CHECK_ARG(p.out_now.defined(), "out_now",
                        "expected this update's attention output [B, N, H, dv] with "
                        "config.query_score = kOutputChange");
    if (!p.out_prev.defined()) {
      return choose_symbols(logits, shape, p.seqlens, p.text, p.step, p.config, nullptr);
    }
    const std::vector<double> change =
        output_change_scores(p.out_now, p.out_prev, p.seqlens, p.block_q);
    const int a = p.seqlens.cu_seqlens_q != nullptr ? 0 : 1;
    FLASHOMNI_CHECK_ARG(p.out_now.shape[a + 1] == shape.heads, "out_now", "expected ", shape.heads,
                        " heads like q, got ", p.out_now.shape[a + 1]);
    return choose_symbols(logits, shape, p.seqlens, p.text, p.step, p.config, &change);
  }
  return choose_symbols(logits, shape, p.seqlens, p.text, p.step, p.config);
}

}  // namespace flashomni
