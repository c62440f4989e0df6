// Test helpers for the symbols suites: varlen cases, seeded random symbols, error expectations.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "flashomni/symbols.h"

namespace flashomni::testing {

// Owns the cu_seqlens arrays a varlen SeqLens points into (copying a SeqLens would dangle).
struct SeqCase {
  std::vector<int32_t> cu_q, cu_kv;
  SeqLens seqlens;

  SeqCase(const SeqCase&) = delete;
  SeqCase& operator=(const SeqCase&) = delete;

  // Varlen: one length per request.
  SeqCase(std::initializer_list<int32_t> q_lens, std::initializer_list<int32_t> kv_lens)
      : SeqCase(std::vector<int32_t>(q_lens), std::vector<int32_t>(kv_lens)) {}
  SeqCase(const std::vector<int32_t>& q_lens, const std::vector<int32_t>& kv_lens) {
    cu_q.push_back(0);
    for (int32_t l : q_lens) cu_q.push_back(cu_q.back() + l);
    cu_kv.push_back(0);
    for (int32_t l : kv_lens) cu_kv.push_back(cu_kv.back() + l);
    seqlens.batch = static_cast<int32_t>(q_lens.size());
    seqlens.cu_seqlens_q = cu_q.data();
    seqlens.cu_seqlens_kv = cu_kv.data();
  }
  // Uniform batch.
  SeqCase(int32_t batch, int32_t seqlen_q, int32_t seqlen_kv) {
    seqlens.batch = batch;
    seqlens.seqlen_q = seqlen_q;
    seqlens.seqlen_kv = seqlen_kv;
  }
};

// Every in-range bit set with probability `density` (mt19937 is portable, its raw output is used
// directly so the case is the same with every standard library). Out-of-range bits stay 0.
inline Symbols random_symbols(const SeqLens& seqlens, int32_t heads, int32_t block_q,
                              int32_t block_kv, uint32_t seed, double density = 0.5) {
  std::mt19937 rng(seed);
  const uint32_t threshold = static_cast<uint32_t>(density * 4294967295.0);
  Symbols s(symbol_shape_for(seqlens, heads, block_q, block_kv));
  for (int32_t b = 0; b < seqlens.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, block_kv);
    for (int32_t h = 0; h < heads; ++h) {
      for (int32_t i = 0; i < nq; ++i) {
        s.set_query(b, h, i, rng() < threshold);
        for (int32_t j = 0; j < nk; ++j) s.set_kv(b, h, i, j, rng() < threshold);
      }
    }
  }
  return s;
}

template <typename F>
void expect_invalid_argument(F&& f, std::initializer_list<std::string_view> parts, const char* file,
                             int line) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument) << e.what();
    const std::string message = e.what();
    for (std::string_view part : parts) {
      if (message.find(part) == std::string::npos) {
        ADD_FAILURE_AT(file, line) << "message \"" << message << "\" lacks \"" << part << "\"";
      }
    }
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE_AT(file, line) << "threw a non-flashomni exception: " << e.what();
    return;
  }
  ADD_FAILURE_AT(file, line) << "did not throw";
}

}  // namespace flashomni::testing

// EXPECT_INVALID(statement, "substring", ...): the statement throws Error(kInvalidArgument) whose
// message holds every substring.
#define EXPECT_INVALID(statement, ...)                                                     \
  ::flashomni::testing::expect_invalid_argument([&] { (void)(statement); }, {__VA_ARGS__}, \
                                                __FILE__, __LINE__)
