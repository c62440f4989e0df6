// FlashOmni GPU check programs: the shared harness (PASS/FAIL lines, the closing count, CUDA_OK).
// The GPU machine has no GoogleTest, so each tests/gpu/*.cpp is a plain program built on this.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace flashomni::gpu_check {

inline int g_passed = 0;
inline int g_failed = 0;

inline void report(bool ok, const std::string& name, const std::string& detail) {
  (ok ? g_passed : g_failed)++;
  std::printf("[%s] %s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  std::fflush(stdout);  // a crash or sanitizer abort must not swallow the lines before it
}

// Prints the closing "N passed, M failed" line; the program's exit status.
inline int finish() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

}  // namespace flashomni::gpu_check

// A CUDA error in the harness itself (not in the code under test) ends the program with status 2.
#define CUDA_OK(expr)                                                                            \
  do {                                                                                           \
    cudaError_t e_ = (expr);                                                                     \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(2);                                                                              \
    }                                                                                            \
  } while (0)
