// FlashOmni CUDA layer (GEMM): tile constants, the work-item encoding, the workspace layout and the
// plain-data parameters the planner, the kernel and the host launcher share (no device code).
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstddef>
#include <cstdint>

#include "flashomni/common.h"
#include "flashomni/symbols.h"

namespace flashomni::cuda::gemm {

// One output tile is 128 rows x 256 columns, reduced in k-blocks of 64. 256 columns per tile lets
// each consumer warpgroup issue m64n256k16 wgmma, whose shared-memory traffic per FLOP is the
// lowest (A 2 KB + B 8 KB per 0.5 MFLOP); 128 rows = one default query block (bq = 128).
inline constexpr int kTileM = 128;
inline constexpr int kTileN = 256;
inline constexpr int kTileK = 64;  // 64 x 2 bytes = one 128-byte swizzle row
// Up to 4 stages x (16 KB A + 32 KB B) = 192 KB of the 227 KB shared memory per CTA. A launch
// runs 4 stages with a two-pass epilogue, or 3 with a one-pass one (GemmKernelParams::stages; a
// compile-time shape, two kernels per dtype). Measured on the H100 (gemm_notes.md, session 3):
// 3 stages run K = 15360 (FLUX's fused proj_out) 2-17 % faster at M >= 16896, but M = 4608
// 1-4 % and short GEMM-Q lists (density 0.1) up to 23 % slower, so the launcher picks 3 only
// from kThreeStageKBlocks k-blocks per tile and kThreeStageRows rows (all batch entries) on.
inline constexpr int kMaxStages = 4;
inline constexpr int kThreeStageKBlocks = 128;  // K >= 8192
inline constexpr int64_t kThreeStageRows = 8192;
// Epilogue: each consumer warpgroup stages 64-row x 128-byte boxes in shared memory and stores
// them with TMA, so global writes overlap the next tile's mainloop.
inline constexpr int kEpilogueRows = 64;
inline constexpr int kEpilogueBoxBytes = kEpilogueRows * 128;
inline constexpr int kThreads = 384;  // producer warpgroup + 2 consumer warpgroups (64 rows each)
inline constexpr int kPlannerThreads = 1024;
// Heads of a row block are packed into a 64-bit mask (FLUX, SD3, HunyuanVideo: 24; Wan: 40).
inline constexpr int kMaxHeads = 64;
// Counting-sort buckets of the GEMM-O planner: cost = k-blocks of a row block (<= 64 * 4 + extra).
inline constexpr int kMaxPlanCost = 1023;
// Last-round K split (GEMM-Q, GEMM-O dispatch; last_round_k_parts): a tile of the last round is
// cut into up to kMaxSplitK ranges of at least kMinSplitKBlocks k-blocks each. Measured on the
// H100 (gemm_notes.md, session 6): a round of split parts costs ~12-15 us beyond its k-blocks
// (~0.8 us each at full rate): the fp32 partials through L2, the owner's wait and adds, a colder
// pipeline. With 16-k-block parts (K = 3072 in 3) that made the last round no shorter than its
// 128-column halves (dense gemm_q M = 4608 within 2 %, density 0.1 16 % slower), while K = 15360
// in 3 parts of 80 was 3-7 % faster. So a part takes >= 40 k-blocks (~32 us), and a launch
// splits only when its tiles reach 2 x 40 k-blocks (K >= 5120); shorter ones keep the halves.
inline constexpr int kMaxSplitK = 4;
inline constexpr int kMinSplitKBlocks = 40;
inline constexpr int kPartialFloats = kTileM * kTileN;  // one fp32 tile: 128 KB

enum class GemmMode : int32_t { kQ = 0, kOUpdate = 1, kODispatch = 2 };

// GEMM-Q tall items (GemmPlanParams::pair_heads): the sign bit of a planner item's fourth word.
// The planner pairs one-head partial groups only when the candidate row tiles fit its shared
// table (4096: 512K tokens per call at 128-row tiles); longer lists keep one-head items.
inline constexpr int32_t kTallItem = INT32_MIN;
inline constexpr int32_t kMaxPairCandidates = 4096;

// n / d for 0 <= n < 2^31 and a launch-constant d >= 1, as umulhi(n, mul) >> shift (the round-up
// multiplier method, exact on that range): the consumers decode every tile between its
// predecessor's epilogue and its first wgmma, where three 32-bit divides (~30 dependent
// instructions each) plus the round step's took ~1,300 clocks of a ~56,000-clock tile (dense
// gemm_q, H100 clock64 trace, scripts/gemm_trace.patch).
struct FastDiv {
  int32_t d = 1;
  uint32_t mul = 0;
  uint32_t shift = 0;
  FastDiv() = default;
  explicit FastDiv(int32_t divisor) : d(divisor > 1 ? divisor : 1) {
    if (d == 1) return;
    uint32_t log2_up = 0;
    while ((int64_t{1} << log2_up) < d) ++log2_up;
    const uint32_t p = 31 + log2_up;
    mul = static_cast<uint32_t>(((uint64_t{1} << p) + static_cast<uint64_t>(d) - 1) /
                                static_cast<uint64_t>(d));
    shift = p - 32;
  }
  __host__ __device__ int32_t div(int32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t hi = __umulhi(static_cast<uint32_t>(n), mul);
#else
    const auto hi = static_cast<uint32_t>((static_cast<uint64_t>(n) * mul) >> 32);
#endif
    return d == 1 ? n : static_cast<int32_t>(hi >> shift);
  }
};

// Work items, 16 bytes each, written by the planner (or derived from the index when dense).
//   GEMM-Q: {b, m0, heads, slots}: output tile rows m0..m0+127 of batch entry b, columns of up to
//     4 heads (byte s of `heads` is the head in column slot s; slots = heads used);
//     or a tall item {b, m0, m0_2, kTallItem | b_2 << 8 | head}: one 128-column head over two row
//     tiles, (b, m0) for consumer warpgroup 0 and (b_2, m0_2) for warpgroup 1 (plan_q_paired);
//   GEMM-O: one entry per row tile {b, m0, mask_lo, mask_hi} (bit h = head h active), expanded to
//     n_tiles items (entry = item / n_tiles, column tile = item % n_tiles).
// m0 may be negative or run past M (row_offset, tails): those rows are loaded as zeros by TMA and
// never stored.
struct GemmKernelParams {
  GemmMode mode = GemmMode::kQ;
  int32_t batch = 0;
  int32_t rows = 0;  // M
  int32_t cols = 0;  // N (output columns)
  int32_t heads = 0;
  int32_t head_dim = 0;        // 64, 128 or 256
  int32_t slots = 0;           // GEMM-Q: heads per tile = 256 / head_dim
  int32_t k_blocks = 0;        // GEMM-Q: ceil(K / 64)
  int32_t extra_k_blocks = 0;  // GEMM-O: ceil(extra / 64), always-active columns after the heads
  int32_t n_tiles = 0;         // GEMM-O: ceil(N / 256)
  int32_t b_box_rows = 0;      // rows per weight TMA box: head_dim (GEMM-Q) or 128 (GEMM-O)
  // Row tiles: dense when q_bits == nullptr (m0 = 128 * t); otherwise tile t of batch entry b is
  // chunk t % chunks_per_block of query block first_block + t / chunks_per_block.
  int32_t row_tiles = 0;  // per batch entry
  int32_t block_q = 0;
  int32_t chunks_per_block = 1;  // block_q / 128
  int32_t first_block = 0;
  int32_t row_offset = 0;
  int32_t dense_items = 0;  // item count when no planner ran (dense), else an upper bound
  int32_t split_from = 0;   // dense GEMM-Q: items from here on are half groups (last_round_split)
                            // or, with pair_split, K halves of whole groups
  const int4* items = nullptr;          // planner output (nullptr: dense, items from the index)
  const int32_t* item_count = nullptr;  // device count (GEMM-Q items / GEMM-O row entries)
  int32_t cache_only = 0;       // GEMM-O update with no out: reduce and store the cache C only
  int32_t stages = kMaxStages;  // ring length: 4, or 3 with the one-pass epilogue (launcher)
  // 2-CTA clusters (launcher, cluster_pairs_items): CTAs 2i and 2i + 1 always run items k and
  // k ^ 1, which the launcher guarantees exist together and read the same A rows in the same
  // k-block order; each CTA loads 64 of the 128 rows and multicasts them to both, and a ring
  // stage goes back to the producers only when the pair's four consumer warpgroups are done
  // with it (empty barriers of 4 arrivals).
  int32_t cluster = 0;
  // Pair K split (dense GEMM-Q in a cluster launch, launcher: q_pair_split): the items from
  // split_from on are not 128-column halves but both K halves of whole groups. CTA rank r of the
  // pair reduces k-blocks [r k_blocks / 2, (r + 1) k_blocks / 2) of all 256 columns; warpgroup
  // 1 - r sends its fp32 fragment into the peer's ring over DSMEM (gemm_split.cuh,
  // send_pair_partial) and warpgroup r adds the peer's and stores its 64 rows.
  int32_t pair_split = 0;
  // Divisors of the tile decode (FastDiv): the grid (round_item's rounds), row_tiles, n_tiles
  // (GEMM-O) and the head groups per row tile, ceil(heads / slots) (dense GEMM-Q).
  FastDiv grid_div, row_tiles_div, n_tiles_div, groups_div;
  // Last-round K split (GEMM-Q, GEMM-O dispatch): on when split_k; split_flags (one int32 per
  // split tile, zeroed by the planner or a memset, and back to zero when each owner is done)
  // count the partials stored in split_partials (kPartialFloats each) by the non-owner parts.
  int32_t split_k = 0;
  int32_t* split_flags = nullptr;
  float* split_partials = nullptr;
  // Epilogue (strides in elements; batch stride unused when batch == 1).
  void* out = nullptr;
  int64_t out_row_stride = 0, out_batch_stride = 0;
  const void* bias = nullptr;
  // The producer brings each tile's bias into shared memory by a bulk copy with the tile's first
  // loads (stage_bias in gemm_producer.cuh, init_bias in gemm_epilogue.cuh), so the consumers do
  // not wait on L2 at tile start; 0 (unaligned bias, N % 8 != 0, or FLASHOMNI_GEMM_BIAS_STAGED=0)
  // loads it from global memory.
  int32_t bias_staged = 0;
  void* cache = nullptr;  // GEMM-O: written by update, read by dispatch
  int32_t cache_fp32 = 0;
  int64_t cache_row_stride = 0, cache_batch_stride = 0;
};

// Planner inputs: the device symbols (only Sq is read) and the row-tile geometry.
struct GemmPlanParams {
  GemmMode mode = GemmMode::kQ;
  SymbolsRef symbols;
  int32_t batch = 0, rows = 0, heads = 0, slots = 0;
  int32_t row_tiles = 0, block_q = 0, chunks_per_block = 1, first_block = 0, row_offset = 0;
  int32_t k_blocks_per_head = 0, extra_k_blocks = 0;
  int32_t cache_only = 0;
  int32_t ctas = 0;  // SMs the persistent kernel may use (GEMM-Q's last-round halves; 0: none)
  int32_t pair_heads = 0;  // GEMM-Q, 128-column heads, no K split: tall items (plan_q_paired)
  int4* items = nullptr;
  int32_t* item_count = nullptr;
  int32_t* split_flags = nullptr;  // zeroed by the planner (GemmKernelParams::split_flags)
  int32_t split_flag_count = 0;
};

// The last round of a persistent item list (GEMM-Q groups of heads, GEMM-O column tiles). The
// CTAs take one item per round (round_item), whole items (256 columns) first, then the partial
// GEMM-Q groups. When the whole items leave a last round of rest = full % ctas, and their halves
// plus the partial groups fit in one round (2 rest + partial <= ctas), those rest items become
// two 128-column halves each (m64n128 wgmma, measured ~0.8 of a whole tile's time): the last
// round then ends about half a tile earlier. Dense M = 4608 (432 items on 132 SMs: 3 rounds +
// 36): 4 -> ~3.55 tile times predicted, -9 % measured for GEMM-Q. Returns the index of the first
// whole item emitted as halves (`full` when none is).
__host__ __device__ inline int32_t last_round_split(int32_t full, int32_t partial, int32_t slots,
                                                    int32_t ctas) {
  const int32_t rest = ctas > 0 ? full % ctas : 0;
  if (slots < 2 || rest == 0 || 2 * rest + partial > ctas) return full;
  return full - rest;
}

// Parts per tile of the last round when the K split is on: a list of `tiles` on `ctas`
// persistent CTAs leaves a last round of rest = tiles % ctas tiles; each is cut into
// parts = min(kMaxSplitK, ctas / rest) K ranges (1: no split), so the last round still fits one
// round of CTAs, all resident together (an owner part waits for the others' partials). Dense
// M = 4608, N = 3072 (432 tiles on 132 SMs: 3 rounds + 36): 3 parts of 16 k-blocks at K = 3072,
// the last round ~0.36 tile time + the partial sums where its halves took ~0.8 (gemm_notes.md).
// Partials: rest x (parts - 1) < ctas tiles of 128 KB, 9.4 MB there, held in L2.
__host__ __device__ inline int32_t last_round_k_parts(int32_t tiles, int32_t ctas) {
  const int32_t rest = ctas > 0 ? tiles % ctas : 0;
  if (rest == 0) return 1;
  const int32_t parts = ctas / rest;
  return parts < kMaxSplitK ? parts : kMaxSplitK;
}

// Workspace: [count int32, padded to 256 B][items int4 x max_items] when a planner runs, then
// the K split's [flags int32 x ctas, padded to 256 B][partials fp32 x kPartialFloats x ctas].
inline std::size_t plan_workspace_bytes(int64_t max_items) {
  return 256 + static_cast<std::size_t>(max_items) * sizeof(int4);
}
inline std::size_t split_flags_bytes(int32_t ctas) {
  return (static_cast<std::size_t>(ctas) * sizeof(int32_t) + 255) / 256 * 256;
}
inline std::size_t split_workspace_bytes(int32_t ctas) {
  return split_flags_bytes(ctas) + static_cast<std::size_t>(ctas) * kPartialFloats * sizeof(float);
}

// Launches (on `stream`, no host synchronisation). The kernel is launched with programmatic
// dependent launch so its prologue overlaps the planner.
void launch_gemm_planner(const GemmPlanParams& p, cudaStream_t stream);
// TMA maps: A (activations) and B (weight) loads in 128 x 64 (64 x 64) / b_box_rows x 64 boxes; out
// and cache stores in 64-row x 128-byte boxes (cache_map = out_map for GEMM-Q).
struct GemmTensorMaps {
  // a_half: 64-row boxes (the clusters' multicast halves), right after a (the producer takes it
  // as &a + 1).
  CUtensorMap a, a_half, b, out, cache;
};
void launch_sparse_gemm_bf16(const GemmKernelParams& p, const GemmTensorMaps& maps, int grid,
                             cudaStream_t stream);
void launch_sparse_gemm_fp16(const GemmKernelParams& p, const GemmTensorMaps& maps, int grid,
                             cudaStream_t stream);

}  // namespace flashomni::cuda::gemm
