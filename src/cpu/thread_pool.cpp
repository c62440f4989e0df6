// FlashOmni CPU backend: persistent thread pool behind parallel_for (see thread_pool.h).
#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace flashomni::cpu {
namespace {

thread_local bool tls_in_pool_task = false;

int configured_threads() {
  if (const char* env = std::getenv("FLASHOMNI_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    // Anything but a positive integer (empty, "abc", "0", "-3") falls back to the default.
    if (end != env && *end == '\0' && n > 0) return static_cast<int>(std::min(n, 1024L));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : threads_(threads) {
    for (int t = 1; t < threads_; ++t) workers_.emplace_back([this] { worker_loop(); });
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& w : workers_) w.join();
  }

  int threads() const { return threads_; }

  void run(int64_t count, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (count <= 1 || threads_ == 1 || tls_in_pool_task || !busy.owns_lock()) {
      run_serial(count, fn);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      count_ = count;
      next_.store(0);
      error_ = nullptr;
      active_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return active_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static void run_serial(int64_t count, const std::function<void(int64_t)>& fn) {
    const bool was = tls_in_pool_task;
    tls_in_pool_task = true;
    try {
      for (int64_t i = 0; i < count; ++i) fn(i);
    } catch (...) {
      tls_in_pool_task = was;
      throw;
    }
    tls_in_pool_task = was;
  }

  // Takes items until none are left; after an error the remaining items are skipped.
  void drain() {
    tls_in_pool_task = true;
    for (;;) {
      const int64_t i = next_.fetch_add(1);
      if (i >= count_) break;
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
        next_.store(count_);
      }
    }
    tls_in_pool_task = false;
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      drain();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--active_ == 0) done_.notify_one();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;   // one parallel_for at a time; others run serially
  std::mutex mutex_;  // guards the fields below
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
  int active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

ThreadPool& pool() {
  static ThreadPool instance(configured_threads());
  return instance;
}

}  // namespace

int num_threads() {
  return pool().threads();
}

void parallel_for(int64_t count, const std::function<void(int64_t)>& fn) {
  if (count <= 0) return;
  pool().run(count, fn);
}

}  // namespace flashomni::cpu
