// FlashOmni CUDA layer (GEMM): the last-round K split's partial sums (last_round_k_parts), and the
// pair K split's exchange over DSMEM (receive_pair_partial, send_pair_partial). K split: a part
// other than the tile's owner stores its warpgroups' fp32 fragments in its CTA's workspace slot
// and counts them in the tile's flag; the owner (split_tile picks it) waits until every other part
// has counted, then adds their partials in part order (deterministic) before its epilogue.
#pragma once

#include "cuda/common/hopper.cuh"
#include "cuda/gemm/gemm_scheduler.cuh"
#include "cuda/gemm/gemm_smem.cuh"

namespace flashomni::cuda::gemm {

// Slots: one per CTA (a part's CTA runs no other unit of the last round). Warpgroup-major: the
// warpgroup's kN / 2 values per thread are kN / 8 float4 rows of its 128 threads, so thread c's
// q-th float4 is at q * 128 + c of the warpgroup's kN * 256 bytes (a warp's 16-byte accesses
// cover 512 contiguous bytes) and the owner copies a warpgroup's part in one bulk load.
template <int kN>
__device__ __forceinline__ float4* partial_base(const GemmKernelParams& p, int32_t slot,
                                                int32_t warpgroup) {
  return reinterpret_cast<float4*>(p.split_partials + static_cast<int64_t>(slot) * kPartialFloats) +
         warpgroup * (kN / 8) * 128;
}

__device__ __forceinline__ void red_release_add(int32_t* flag, int32_t v) {
  asm volatile("red.release.gpu.global.add.s32 [%0], %1;" ::"l"(flag), "r"(v) : "memory");
}
__device__ __forceinline__ int32_t ld_acquire(const int32_t* flag) {
  int32_t v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(flag) : "memory");
  return v;
}
__device__ __forceinline__ float4 ld_shared_f4(const void* p) {
  float4 v;
  asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "r"(hopper::smem_addr(p)));
  return v;
}

// acc += a warpgroup's kN-column fp32 fragment in shared memory at `base`, laid out as
// partial_base's (thread c's q-th float4 at (q * 128 + c) * 16).
template <int kN>
__device__ __forceinline__ void add_fragment(float (&acc)[128], const uint8_t* base) {
  const uint8_t* src = base + (threadIdx.x % 128) * 16;
#pragma unroll
  for (int q = 0; q < kN / 8; ++q) {
    const float4 v = ld_shared_f4(src + q * 128 * 16);
    acc[4 * q] += v.x;
    acc[4 * q + 1] += v.y;
    acc[4 * q + 2] += v.z;
    acc[4 * q + 3] += v.w;
  }
}

// A non-owner part: the warpgroup's kN / 2 accumulators to its CTA's slot (L2 only: another SM
// reads them), then one count per warpgroup once all 128 threads' stores are visible GPU-wide.
template <int kN>
__device__ __forceinline__ void store_partial(const float (&acc)[128], const GemmKernelParams& p,
                                              int32_t split, int32_t warpgroup) {
  float4* dst =
      partial_base<kN>(p, static_cast<int32_t>(blockIdx.x), warpgroup) + threadIdx.x % 128;
#pragma unroll
  for (int q = 0; q < kN / 8; ++q) {
    __stcg(dst + q * 128, make_float4(acc[4 * q], acc[4 * q + 1], acc[4 * q + 2], acc[4 * q + 3]));
  }
  __threadfence();
  hopper::named_barrier_sync(1 + warpgroup, 128);
  if (threadIdx.x % 128 == 0) red_release_add(p.split_flags + split_flag(split), 1);
}

// The owner: waits for both warpgroups of every other part (2 (parts - 1) counts), then adds their
// partials in part order. Register loads could keep only a few KB in flight next to the 128
// accumulators (a first version read 256 KB of partials in ~20 us, slower than the K range it
// saved), so each warpgroup bulk-copies its 64 KB (kN = 256) into the ring and adds from shared
// memory. The ring is free: the split units are their CTAs' last, so the producer loads nothing
// more, and both warpgroups pass a barrier after their last wgmma read it first.
template <int kN, typename Smem>
__device__ __forceinline__ void add_partials(float (&acc)[128], const GemmKernelParams& p,
                                             int32_t split, int32_t k, int32_t warpgroup,
                                             Smem& smem) {
  constexpr uint32_t kBytes = kN * 256;  // the warpgroup's 64 x kN fp32 fragment
  static_assert(2 * kTileN * 256 <= sizeof(smem.a) + sizeof(smem.b), "two fragments in the ring");
  hopper::named_barrier_sync(3, 256);  // both warpgroups' last wgmma have read the ring
  if (threadIdx.x % 128 == 0) {
    while (ld_acquire(p.split_flags + split_flag(split)) < 2 * (split_parts(split) - 1)) {
      __nanosleep(32);
    }
    hopper::fence_proxy_async_global();
  }
  // The other parts in part order (deterministic).
  for (int32_t part = 1; part < split_parts(split); ++part) {
    uint8_t* ring = smem.a[0] + warpgroup * kBytes;
    if (threadIdx.x % 128 == 0) {
      hopper::mbar_arrive_expect_tx(&smem.partial_full[warpgroup], kBytes);
      hopper::bulk_load(ring,
                        partial_base<kN>(p, item_cta(p, split_part_item(p, k, part)), warpgroup),
                        kBytes, &smem.partial_full[warpgroup]);
    }
    // Phases 0, 1, 0 for parts 1, 2, 3: the barrier's only uses in the kernel are these, in the
    // CTA's last unit.
    hopper::mbar_wait(&smem.partial_full[warpgroup], (part - 1) & 1);
    add_fragment<kN>(acc, ring);
    // Every thread has read this part before the next bulk load overwrites it.
    hopper::named_barrier_sync(1 + warpgroup, 128);
  }
  // Both leaders have seen the count (each waited on it above): the flag goes back to zero for
  // the next run on the same list, so a plan's runs need no memset (GemmPlan; the planner zeroes
  // the flags once, when it writes the list). No other unit of this kernel touches the flag.
  hopper::named_barrier_sync(3, 256);
  if (threadIdx.x == 128) p.split_flags[split_flag(split)] = 0;
}

// The pair K split (GemmKernelParams::pair_split): both CTAs of a cluster pair reduce one K half
// of the same 128 x 256 tile, and each keeps 64 of its rows (pair_sender). The unit is both CTAs'
// last, so once both warpgroups' last wgmma have read the ring it is free, and the peer's
// sending warpgroup writes its 64 KB fragment there by st.async, 16 bytes a store completing on
// the keeper's partial_full barrier: no round trip through L2, where item 13's global split
// spent ~10,600 clocks beyond its range (gemm_notes.md). Same layout as a K-split partial
// (partial_base): thread c's q-th float4 at (q * 128 + c) * 16, so a warp's stores and the
// keeper's loads cover 512 contiguous bytes.
template <int kN, typename Smem>
__device__ __forceinline__ void receive_pair_partial(float (&acc)[128], int32_t warpgroup,
                                                     Smem& smem) {
  constexpr uint32_t kBytes = kN * 256;
  static_assert(kBytes <= sizeof(smem.a) + sizeof(smem.b), "a fragment in the ring");
  hopper::named_barrier_sync(3, 256);  // both warpgroups' last wgmma have read the ring
  if (threadIdx.x % 128 == 0) {
    hopper::mbar_arrive_expect_tx(&smem.partial_full[warpgroup], kBytes);
    hopper::mbar_arrive_cluster(&smem.peer_free, hopper::cluster_ctarank() ^ 1u);
  }
  hopper::mbar_wait_cluster(&smem.partial_full[warpgroup], 0);  // the kernel's one use of it
  add_fragment<kN>(acc, smem.a[0]);
}

template <int kN, typename Smem>
__device__ __forceinline__ void send_pair_partial(const float (&acc)[128], int32_t warpgroup,
                                                  Smem& smem) {
  hopper::named_barrier_sync(3, 256);  // with this CTA's keeper (receive_pair_partial)
  const uint32_t peer = hopper::cluster_ctarank() ^ 1u;
  hopper::mbar_wait(&smem.peer_free, 0);  // the kernel's one use of it
  const uint32_t dst = hopper::cluster_addr(smem.a[0], peer) + (threadIdx.x % 128) * 16;
  const uint32_t bar = hopper::cluster_addr(&smem.partial_full[warpgroup], peer);
#pragma unroll
  for (int q = 0; q < kN / 8; ++q) {
    hopper::st_async_cluster(dst + q * 128 * 16, acc[4 * q], acc[4 * q + 1], acc[4 * q + 2],
                             acc[4 * q + 3], bar);
  }
}

}  // namespace flashomni::cuda::gemm
