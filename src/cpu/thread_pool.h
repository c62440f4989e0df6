// FlashOmni CPU backend: a small persistent std::thread pool with a dynamic parallel_for.
// Threads: FLASHOMNI_NUM_THREADS when it is a positive integer, else hardware_concurrency().
#pragma once

#include <cstdint>
#include <functional>

namespace flashomni::cpu {

// Number of threads parallel_for uses (the calling thread included).
int num_threads();

// Calls fn(i) once for every i in [0, count), spread over the pool; items are handed out one at a
// time from an atomic counter, so uneven items (sparse rows) balance themselves. The caller works
// too. Runs serially when called from inside a pool task or while another caller holds the pool
// (no deadlock, no oversubscription). The first exception thrown by fn is rethrown here after every
// started item has finished.
void parallel_for(int64_t count, const std::function<void(int64_t)>& fn);

}  // namespace flashomni::cpu
