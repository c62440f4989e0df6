// DSMEM write bandwidth on sm_90a, for gemm_notes item 24's estimate (a 2-CTA cluster K split
// whose non-owner part writes its 128 KB fp32 fragment into the owner's shared memory). Every
// CTA pair of a 132-CTA grid (all SMs busy, as in the kernel's last round): rank 1's 256 threads
// write `kBytes` into rank 0's buffer with 16-byte stores, then the pair meets at a cluster
// barrier. Printed: clocks per copy (CTA 1's thread 0; median and p90 over every pair's reps but
// the first, cold one) and bytes per clock; the same copy into the CTA's own shared memory and
// into global memory, and the two cluster barriers alone, as references.
// Build: nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a bench/micro/dsmem_probe.cu
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace cg = cooperative_groups;

constexpr int kThreads = 256;
constexpr int kBytes = 128 * 1024;  // one 128 x 256 fp32 fragment
constexpr int kReps = 16;

enum Target { kPeer = 0, kLocal = 1, kGlobal = 2, kNone = 3 };  // kNone: the barriers alone

__global__ void __cluster_dims__(2, 1, 1)
    copy_kernel(int target, float4* global_dst, long long* clocks) {
  extern __shared__ float4 buf[];
  cg::cluster_group cluster = cg::this_cluster();
  const unsigned rank = cluster.block_rank();
  float4* dst = buf;
  if (target == kPeer) dst = cluster.map_shared_rank(buf, 0);
  if (target == kGlobal) dst = global_dst + static_cast<size_t>(blockIdx.x) * (kBytes / 16);
  const float4 v = make_float4(threadIdx.x, rank, 1.f, 2.f);
  for (int rep = 0; rep < kReps; ++rep) {
    cluster.sync();
    const long long start = clock64();
    if (rank == 1 && target != kNone) {
#pragma unroll 8
      for (int i = threadIdx.x; i < kBytes / 16; i += kThreads) dst[i] = v;
    }
    if (target == kGlobal) __threadfence();
    cluster.sync();
    if (rank == 1 && threadIdx.x == 0) clocks[(blockIdx.x / 2) * kReps + rep] = clock64() - start;
  }
}

// Exits with the failing call's name and CUDA's message (no copy is timed after an error).
static void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::printf("%s: %s\n", what, cudaGetErrorString(e));
  std::exit(1);
}

int main() {
  const int grid = 132;
  float4* global_dst = nullptr;
  long long* clocks = nullptr;
  check(cudaMalloc(&global_dst, static_cast<size_t>(grid) * kBytes), "cudaMalloc(global_dst)");
  check(cudaMalloc(&clocks, sizeof(long long) * grid / 2 * kReps), "cudaMalloc(clocks)");
  check(cudaFuncSetAttribute(copy_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kBytes),
        "cudaFuncSetAttribute");
  const char* names[] = {"peer (DSMEM)", "own shared", "global", "no copy"};
  for (int target = 0; target < 4; ++target) {
    copy_kernel<<<grid, kThreads, kBytes>>>(target, global_dst, clocks);
    check(cudaGetLastError(), names[target]);
    std::vector<long long> host(grid / 2 * kReps);
    check(cudaMemcpy(host.data(), clocks, sizeof(long long) * host.size(), cudaMemcpyDeviceToHost),
          names[target]);
    std::vector<long long> warm;  // rep 0 is the cold one
    for (int c = 0; c < grid / 2; ++c) {
      warm.insert(warm.end(), host.data() + c * kReps + 1, host.data() + (c + 1) * kReps);
    }
    std::sort(warm.begin(), warm.end());
    const long long med = warm[warm.size() / 2], hi = warm[warm.size() * 9 / 10];
    std::printf("%-13s %d KB: median %lld clocks (p90 %lld), %.1f B per clock per writing SM\n",
                names[target], kBytes / 1024, med, hi, static_cast<double>(kBytes) / med);
  }
  return 0;
}
