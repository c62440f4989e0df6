// Host tests of the CPU backend's parallel_for: every index exactly once, errors rethrown, nested
// and concurrent callers served (serially) instead of deadlocking.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu/thread_pool.h"

namespace flashomni::cpu {
namespace {

TEST(CpuThreadPool, RunsEveryIndexExactlyOnce) {
  EXPECT_GE(num_threads(), 1);
  for (int64_t count : {0, 1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> hits(count);
    parallel_for(count, [&](int64_t i) { hits[i].fetch_add(1); });
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(hits[i].load(), 1) << count << " " << i;
  }
}

TEST(CpuThreadPool, RethrowsTheFirstErrorAndStaysUsable) {
  EXPECT_THROW(parallel_for(100,
                            [](int64_t i) {
                              if (i == 37) throw std::runtime_error("item 37");
                            }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  parallel_for(100, [&](int64_t i) { sum += i; });
  EXPECT_EQ(sum.load(), 99 * 100 / 2);
}

TEST(CpuThreadPool, NestedAndConcurrentCallsComplete) {
  std::atomic<int64_t> inner{0};
  parallel_for(8, [&](int64_t) { parallel_for(10, [&](int64_t) { ++inner; }); });
  EXPECT_EQ(inner.load(), 80);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] { parallel_for(50, [&](int64_t) { ++total; }); });
  }
  for (std::thread& c : callers) c.join();
  EXPECT_EQ(total.load(), 200);
}

}  // namespace
}  // namespace flashomni::cpu
