// FlashOmni CUDA layer (GEMM): accumulator initialisation (zeros, bias, cached partial sum) and
// the stores of a warpgroup's 64 x 256 fp32 fragment (out, cache) through shared memory and TMA.
//
// wgmma fragment (m64nNk16, fp32): thread t of the warpgroup holds, for column group j < N / 8,
// acc[4j + 0..1] at (row 16 * (t / 32) + (t % 32) / 4, cols 8j + 2 (t % 4) + 0..1) and
// acc[4j + 2..3] at the same columns 8 rows lower.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/common/hopper.cuh"
#include "cuda/gemm/gemm_scheduler.cuh"
#include "cuda/gemm/gemm_smem.cuh"

namespace flashomni::cuda::gemm {

template <typename T>
__device__ __forceinline__ float2 load_pair(const T* p);
template <>
__device__ __forceinline__ float2 load_pair<__nv_bfloat16>(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
template <>
__device__ __forceinline__ float2 load_pair<__half>(const __half* p) {
  return __half22float2(*reinterpret_cast<const __half2*>(p));
}
template <>
__device__ __forceinline__ float2 load_pair<float>(const float* p) {
  return *reinterpret_cast<const float2*>(p);
}

template <typename T>
__device__ __forceinline__ void store_pair(T* p, float x, float y);
template <>
__device__ __forceinline__ void store_pair<__nv_bfloat16>(__nv_bfloat16* p, float x, float y) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(x, y);
}
template <>
__device__ __forceinline__ void store_pair<__half>(__half* p, float x, float y) {
  *reinterpret_cast<__half2*>(p) = __floats2half2_rn(x, y);
}
template <>
__device__ __forceinline__ void store_pair<float>(float* p, float x, float y) {
  *reinterpret_cast<float2*>(p) = make_float2(x, y);
}

// A pair of fragment values to shared memory at a 32-bit shared address (st.shared). The staging
// stores once went through generic pointers: ST.E with 64-bit address arithmetic per store and a
// MEMBAR.ALL.CTA in front of the proxy fence, ~1,100-1,700 clocks a pass (clock64 trace,
// scripts/gemm_trace.patch) for 16 KB.
template <typename D>
__device__ __forceinline__ void st_shared_pair(uint32_t addr, float x, float y) {
  if constexpr (sizeof(D) == 4) {
    asm volatile("st.shared.v2.f32 [%0], {%1, %2};" ::"r"(addr), "f"(x), "f"(y) : "memory");
  } else {
    uint32_t v;
    store_pair(reinterpret_cast<D*>(&v), x, y);
    asm volatile("st.shared.b32 [%0], %1;" ::"r"(addr), "r"(v) : "memory");
  }
}

// Where this thread's fragment lands: rows row0 and row0 + 8 of the tile, column 8j + col0.
struct FragmentCoords {
  int32_t row0, col0;
  __device__ __forceinline__ FragmentCoords(int32_t warpgroup) {
    const int32_t t = threadIdx.x % 128;
    row0 = warpgroup * 64 + 16 * (t / 32) + (t % 32) / 4;
    col0 = 2 * (t % 4);
  }
};

// Output column of tile column c (GEMM-Q: through the head slots), or -1 when c is not stored.
__device__ __forceinline__ int32_t output_col(const GemmKernelParams& p, const Tile& t, int32_t c) {
  if (p.mode == GemmMode::kQ) {
    const int32_t shift = 31 - __clz(p.head_dim);  // head_dim is 64, 128 or 256 (launcher)
    const int32_t slot = c >> shift;
    if (slot >= t.slots) return -1;
    return static_cast<int32_t>((t.heads >> (8 * slot)) & 0xffu) * p.head_dim +
           (c & (p.head_dim - 1));
  }
  const int32_t col = t.n0 + c;
  return col < p.cols ? col : -1;
}

// acc = bias (broadcast over rows) or 0, from global memory; columns = kN / 8 groups.
template <int kN, typename T>
__device__ __forceinline__ void init_bias_global(float (&acc)[128], const GemmKernelParams& p,
                                                 const Tile& t, const FragmentCoords& f) {
  const T* bias = static_cast<const T*>(p.bias);
#pragma unroll
  for (int j = 0; j < kN / 8; ++j) {
    float2 v = make_float2(0.f, 0.f);
    if (bias != nullptr) {
      const int32_t col = output_col(p, t, 8 * j + f.col0);
      if (col >= 0) v = load_pair(bias + col);
    }
    acc[4 * j + 0] = v.x;
    acc[4 * j + 1] = v.y;
    acc[4 * j + 2] = v.x;
    acc[4 * j + 3] = v.y;
  }
}

// acc = bias, staged or from global memory (GemmKernelParams::bias_staged). From global, the 32
// loads a thread issues at tile start wait on L2 (busy with the mainloop's TMA loads) before the
// first wgmma: 5-8 % of GEMM-Q's and update's time on the H100, ~3,000 clocks of a ~55k-clock
// tile (gemm_notes.md item 22). Staged, the producer's bulk copy left with the tile's first loads,
// a ring (~4k clocks) ahead, and the reads are ld.shared (8 threads of a warp share a word: no
// bank conflicts); the staged and the no-bias runs then take the same time within 1 %.
template <int kN, typename T, typename Smem>
__device__ __forceinline__ void init_bias(float (&acc)[128], const GemmKernelParams& p,
                                          const Tile& t, const FragmentCoords& f, Smem& smem,
                                          PipelineState<Smem::kStages>& state) {
  if (!bias_staged_tile(p, t)) {
    init_bias_global<kN, T>(acc, p, t, f);
    return;
  }
  const int32_t slot = state.bias_slot();
  hopper::mbar_wait(&smem.bias_full[slot], state.bias_phase());
  const int32_t valid = bias_cols(p, t);
  const uint8_t* base = smem.bias[slot];
#pragma unroll
  for (int j = 0; j < kN / 8; ++j) {
    const int32_t c = 8 * j + f.col0;
    float2 v = make_float2(0.f, 0.f);
    if (c < valid) {
      const uint32_t w = hopper::ld_shared_u32(base + 2 * c);
      v = load_pair(reinterpret_cast<const T*>(&w));
    }
    acc[4 * j + 0] = v.x;
    acc[4 * j + 1] = v.y;
    acc[4 * j + 2] = v.x;
    acc[4 * j + 3] = v.y;
  }
  // Every consumer thread arrives (256): the arrive's release orders its reads before the
  // producer's next copy into the slot.
  hopper::mbar_arrive(&smem.bias_empty[slot]);
  state.bias_advance();
}

// acc = 0 for the first kCount values (kN / 2 of a kN-column fragment).
template <int kCount>
__device__ __forceinline__ void zero_fill(float (&acc)[128]) {
#pragma unroll
  for (int i = 0; i < kCount; ++i) acc[i] = 0.f;
}

// acc = cache tile of kN columns (GEMM-O dispatch); rows outside [0, M) stay 0 and are never
// stored.
template <int kN, typename C>
__device__ __forceinline__ void init_from_cache(float (&acc)[128], const GemmKernelParams& p,
                                                const Tile& t, const FragmentCoords& f) {
  const C* base = static_cast<const C*>(p.cache) + t.b * p.cache_batch_stride;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int32_t row = t.m0 + f.row0 + 8 * half;
    const bool row_ok = row >= 0 && row < p.rows;
    const C* src = base + static_cast<int64_t>(row) * p.cache_row_stride;
#pragma unroll
    for (int j = 0; j < kN / 8; ++j) {
      const int32_t col = t.n0 + 8 * j + f.col0;
      float2 v = make_float2(0.f, 0.f);
      if (row_ok && col < p.cols) v = load_pair(src + col);
      acc[4 * j + 2 * half + 0] = v.x;
      acc[4 * j + 2 * half + 1] = v.y;
    }
  }
}

// Stores the warpgroup's 64 x kN fragment with plain 2-column stores, masked to rows [0, M):
// the fallback for a 64-row box that starts above row 0 (row_offset not a multiple of 64), since
// a TMA store box must not start at a negative coordinate (illegal instruction on H100).
template <int kN, typename D>
__device__ __forceinline__ void store_tile_direct(const float (&acc)[128],
                                                  const GemmKernelParams& p, const Tile& t,
                                                  const FragmentCoords& f, D* dst,
                                                  int64_t row_stride, int64_t batch_stride) {
  D* base = dst + t.b * batch_stride;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int32_t row = t.m0 + f.row0 + 8 * half;
    if (row < 0 || row >= p.rows) continue;
    D* out = base + static_cast<int64_t>(row) * row_stride;
#pragma unroll
    for (int j = 0; j < kN / 8; ++j) {
      const int32_t col = output_col(p, t, 8 * j + f.col0);
      if (col >= 0) store_pair(out + col, acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
    }
  }
}

// The warpgroup has written kCount boxes into its staging buffer: make them visible to TMA, then
// its leader stores box b at the tile's column (first_box + b) * kBoxCols (skipped when that
// column is not stored) and commits them as one bulk group.
template <int kCount, int kBoxCols>
__device__ __forceinline__ void store_staged_boxes(const GemmKernelParams& p, const Tile& t,
                                                   uint8_t* buf, const CUtensorMap* map,
                                                   int32_t warpgroup, int first_box) {
  const int32_t first_row = t.m0 + warpgroup * kEpilogueRows;
  hopper::fence_proxy_async_shared();
  hopper::named_barrier_sync(1 + warpgroup, 128);
  if (threadIdx.x % 128 != 0) return;
#pragma unroll
  for (int b = 0; b < kCount; ++b) {
    const int32_t col = output_col(p, t, (first_box + b) * kBoxCols);
    if (col < 0) continue;
    if (p.batch > 1) {
      hopper::tma_store_3d(map, buf + b * kEpilogueBoxBytes, col, first_row, t.b);
    } else {
      hopper::tma_store_2d(map, buf + b * kEpilogueBoxBytes, col, first_row);
    }
  }
  hopper::bulk_commit_group();
}

// Stores the warpgroup's 64 x kN fragment through its shared-memory buffer with TMA. The fragment
// is kN / kBoxCols boxes of 64 rows x 128 bytes (64 16-bit or 32 fp32 columns), written in the
// 128-byte swizzle (16-byte chunk k of row r at chunk k ^ (r % 8): a warp's 8 rows x 16 bytes hit
// 32 distinct banks); a pass fills the buffer's kBufferBoxes boxes (2 or 4), then one thread
// stores them. The buffer is reused only after the previous pass's stores read it. TMA clips rows
// outside [0, M) and columns past N; boxes of unused head slots are skipped.
template <int kN, int kBufferBoxes, typename D>
__device__ __forceinline__ void store_tile_tma(const float (&acc)[128], const GemmKernelParams& p,
                                               const Tile& t, const FragmentCoords& f, uint8_t* buf,
                                               const CUtensorMap* map, int32_t warpgroup, D* dst,
                                               int64_t row_stride, int64_t batch_stride) {
  const int32_t first_row = t.m0 + warpgroup * kEpilogueRows;
  if (first_row + kEpilogueRows <= 0 || first_row >= p.rows) return;  // no row of [0, M)
  if (first_row < 0) {
    store_tile_direct<kN>(acc, p, t, f, dst, row_stride, batch_stride);
    return;
  }
  constexpr int kBoxCols = 128 / static_cast<int>(sizeof(D));
  constexpr int kBoxes = kN / kBoxCols;
  constexpr int kPassBoxes = kBoxes < kBufferBoxes ? kBoxes : kBufferBoxes;
  static_assert(kBoxes % kPassBoxes == 0, "whole passes");
  const bool leader = threadIdx.x % 128 == 0;
  const int bar = 1 + warpgroup;  // named barrier of this warpgroup's 128 threads
  const int32_t row_local = f.row0 - warpgroup * kEpilogueRows;
  // Rows row_local and row_local + 8 share the swizzle (row % 8).
  const uint32_t row_addr = hopper::smem_addr(buf) + static_cast<uint32_t>(row_local) * 128;
  const int swizzle = row_local & 7;
#pragma unroll
  for (int pass = 0; pass < kBoxes / kPassBoxes; ++pass) {
    if (leader) hopper::bulk_wait_group_read0();
    hopper::named_barrier_sync(bar, 128);
#pragma unroll
    for (int jj = 0; jj < kPassBoxes * kBoxCols / 8; ++jj) {
      const int j = pass * (kPassBoxes * kBoxCols / 8) + jj;
      const int c = jj * 8 + f.col0;
      const int byte = (c % kBoxCols) * static_cast<int>(sizeof(D));
      const uint32_t at = row_addr + (jj * 8 / kBoxCols) * kEpilogueBoxBytes +
                          ((((byte >> 4) ^ swizzle)) << 4) + (byte & 15);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        st_shared_pair<D>(at + half * 8 * 128, acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
      }
    }
    store_staged_boxes<kPassBoxes, kBoxCols>(p, t, buf, map, warpgroup, pass * kPassBoxes);
  }
}

// A tall GEMM-Q item's 128 x 128 fragment of this warpgroup's row tile ((b, m0) for warpgroup 0,
// (b2, m0_2) for 1): rows 0-63 from acc[0, 64), rows 64-127 from acc[64, 128), each stored as
// the 64 x 128 fragment of a one-head item whose warpgroup rows start there (store_tile_tma
// places warpgroup w's rows at m0 + 64 w, hence the shift).
template <int kBufferBoxes, typename D>
__device__ __forceinline__ void store_tall_tile(float (&acc)[128], const GemmKernelParams& p,
                                                const Tile& t, const FragmentCoords& f,
                                                uint8_t* buf, const CUtensorMap* map,
                                                int32_t warpgroup, D* dst) {
  Tile rows = t;
  rows.b = warpgroup == 0 ? t.b : t.b2;
  rows.m0 = (warpgroup == 0 ? t.m0 : t.m0_2) - warpgroup * kEpilogueRows;
  store_tile_tma<128, kBufferBoxes>(acc, p, rows, f, buf, map, warpgroup, dst, p.out_row_stride,
                                    p.out_batch_stride);
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = acc[64 + i];
  rows.m0 += kEpilogueRows;
  store_tile_tma<128, kBufferBoxes>(acc, p, rows, f, buf, map, warpgroup, dst, p.out_row_stride,
                                    p.out_batch_stride);
}

// GEMM-O with a 16-bit cache in the 3-stage kernel: the warpgroup's 64 x kN cache fragment (kN / 64
// boxes of 8 KB, 32 KB at kN = 256) fits its staging buffer, in the store layout. Dispatch then
// TMA-loads it at the tile's start and adds it after the mainloop, so its DRAM read overlaps the
// wgmma instead of stalling them (an fp32 tile, 128 KB, sat in front of every tile: ~6 us of a
// ~20 us round at K = 3072, density 0.25); update adds the C it has just staged, in the same
// order (Y = C + sum of active heads from zero), so dispatch repeats update's Y bit for bit.
// Negative first rows (row_offset) cannot use a TMA box: those warpgroups keep the register path.
template <typename Smem>
__device__ __forceinline__ bool cache_staged(const GemmKernelParams& p, const Tile& t,
                                             int32_t warpgroup) {
  if constexpr (Smem::kEpilogueBoxes < 4) {
    return false;
  } else {
    const int32_t first_row = t.m0 + warpgroup * kEpilogueRows;
    return !p.cache_fp32 && first_row >= 0 && first_row < p.rows;
  }
}

// Leader thread: the cache boxes of the warpgroup's kN columns into `buf` once the previous
// tile's TMA stores have read it; completion on `bar` (boxes past N are not loaded, never stored).
template <int kN>
__device__ __forceinline__ void load_cache_staged(const GemmKernelParams& p, const Tile& t,
                                                  uint8_t* buf, const CUtensorMap* map,
                                                  uint64_t* bar, int32_t warpgroup) {
  constexpr int kBoxCols = 64;  // 128 bytes of 16-bit values
  const int32_t first_row = t.m0 + warpgroup * kEpilogueRows;
  const int32_t boxes = min(kN / kBoxCols, (p.cols - t.n0 + kBoxCols - 1) / kBoxCols);
  hopper::bulk_wait_group_read0();
  hopper::mbar_arrive_expect_tx(bar, static_cast<uint32_t>(boxes * kEpilogueBoxBytes));
  for (int32_t b = 0; b < boxes; ++b) {
    uint8_t* dst = buf + b * kEpilogueBoxBytes;
    if (p.batch > 1) {
      hopper::tma_load_3d(dst, map, bar, t.n0 + b * kBoxCols, first_row, t.b);
    } else {
      hopper::tma_load_2d(dst, map, bar, t.n0 + b * kBoxCols, first_row);
    }
  }
}

// Y = staged C + acc (C alone when no k-block ran: !has_acc) for the warpgroup's 64 x kN fragment,
// written over C in place (each thread rewrites exactly the values it read) and stored by TMA. The
// caller has made the staged C visible (mbarrier wait after a load, or the C store's read done plus
// a barrier after update). The shared-memory accesses are volatile asm in chunks of 8 loads then 8
// stores: with plain accesses ptxas hoisted the loads of the whole fragment (128 values more live
// next to the 128 accumulators) and spilled 10.9 KB at the consumers' 232-register budget,
// serialising the wgmma.
template <int kN, typename T>
__device__ __forceinline__ void add_staged_and_store(const float (&acc)[128], bool has_acc,
                                                     const GemmKernelParams& p, const Tile& t,
                                                     const FragmentCoords& f, uint8_t* buf,
                                                     const CUtensorMap* map, int32_t warpgroup) {
  constexpr int kBoxCols = 64;
  constexpr int kChunk = 4;  // column groups of 8 per chunk: 8 values in flight
  static_assert((kN / 8) % kChunk == 0, "whole chunks");
  const int32_t row_local = f.row0 - warpgroup * kEpilogueRows;
  // Column group j of the fragment: box j / 8, 16-byte chunk j % 8 of its row (swizzled by the
  // row's low 3 bits, the same for both halves), byte 2 col0 inside the chunk.
  auto addr = [&](int j, int half) {
    const int r = row_local + 8 * half;
    return buf + (j / 8) * kEpilogueBoxBytes + r * 128 + (((j % 8) ^ (r & 7)) << 4) + 2 * f.col0;
  };
#pragma unroll
  for (int j0 = 0; j0 < kN / 8; j0 += kChunk) {
    uint32_t c[kChunk][2];
#pragma unroll
    for (int jj = 0; jj < kChunk; ++jj) {
#pragma unroll
      for (int half = 0; half < 2; ++half) c[jj][half] = hopper::ld_shared_u32(addr(j0 + jj, half));
    }
#pragma unroll
    for (int jj = 0; jj < kChunk; ++jj) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int i = 4 * (j0 + jj) + 2 * half;
        const float2 v = load_pair(reinterpret_cast<const T*>(&c[jj][half]));
        uint32_t y;
        store_pair(reinterpret_cast<T*>(&y), has_acc ? v.x + acc[i] : v.x,
                   has_acc ? v.y + acc[i + 1] : v.y);
        hopper::st_shared_u32(addr(j0 + jj, half), y);
      }
    }
  }
  store_staged_boxes<kN / kBoxCols, kBoxCols>(p, t, buf, map, warpgroup, 0);
}

// Rounds the accumulator to the storage type in place. GEMM-O update calls it after storing a
// 16-bit cache on the register path (cache_staged false), so that Y = C_stored + active heads
// exactly as dispatch computes it from that cache (same initial values, same wgmma order: update
// then dispatch gives bit-identical Y).
template <typename T, int kCount>
__device__ __forceinline__ void round_to_storage(float (&acc)[128]) {
#pragma unroll
  for (int i = 0; i < kCount; i += 2) {
    T pair[2];
    store_pair<T>(pair, acc[i], acc[i + 1]);
    const float2 v = load_pair<T>(pair);
    acc[i] = v.x;
    acc[i + 1] = v.y;
  }
}

}  // namespace flashomni::cuda::gemm
