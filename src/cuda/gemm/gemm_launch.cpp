// FlashOmni CUDA layer (GEMM): host launchers of gemm_q / gemm_o_update / gemm_o_dispatch — check
// what the sm_90a kernel supports, carve the workspace, encode the TMA maps, enqueue the planner
// (when symbols are given) and the persistent kernel on the caller's stream. No host sync.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cuda/common/tensor_map.h"
#include "cuda/gemm/gemm_params.h"
#include "cuda/gemm/gemm_plan.h"
#include "cuda/runtime.h"
#include "flashomni/cuda_ops.h"

namespace flashomni::cuda {
namespace {

using gemm::GemmKernelParams;
using gemm::GemmMode;
using gemm::GemmPlanParams;
using gemm::kTileK;
using gemm::kTileM;
using gemm::kTileN;
using gemm::plan_only;
using gemm::Planning;
using gemm::planning_for;

// The operand/output views every call shares, flattened to [batch, rows, cols].
struct Operand3 {
  int64_t batch = 1, rows = 0, cols = 0, row_stride = 0, batch_stride = 0;
};

Operand3 as_3d(const TensorRef& t, const char* name) {
  FLASHOMNI_CHECK_ARG(t.ndim == 2 || t.ndim == 3, name, "expected 2 or 3 dims, got ", t.ndim);
  FLASHOMNI_CHECK_ARG(t.stride[t.ndim - 1] == 1 || t.shape[t.ndim - 1] <= 1, name,
                      "last dim must be contiguous");
  Operand3 o;
  o.rows = t.shape[t.ndim - 2];
  o.cols = t.shape[t.ndim - 1];
  o.row_stride = t.stride[t.ndim - 2];
  if (t.ndim == 3) {
    o.batch = t.shape[0];
    o.batch_stride = t.stride[0];
  }
  return o;
}

// Row tiles of 128 rows per batch entry; with symbols, tiles follow the query blocks (a block
// of block_q = 128 c rows is c tiles), so every tile lies in one block.
struct RowTiling {
  int32_t row_tiles = 0, block_q = 0, chunks_per_block = 1, first_block = 0;
};

RowTiling row_tiling(int64_t rows, int32_t row_offset, const SymbolsRef* symbols) {
  RowTiling r;
  if (symbols == nullptr) {
    r.row_tiles = static_cast<int32_t>((rows + kTileM - 1) / kTileM);
    return r;
  }
  r.block_q = symbols->shape.block_q;
  r.chunks_per_block = r.block_q / kTileM;
  r.first_block = row_offset / r.block_q;
  const int64_t last_block = rows > 0 ? (rows - 1 + row_offset) / r.block_q : r.first_block - 1;
  r.row_tiles = static_cast<int32_t>((last_block - r.first_block + 1) * r.chunks_per_block);
  return r;
}

void check_common(const TensorRef& a, const TensorRef& weight, const TensorRef& bias,
                  const TensorRef& out, int32_t heads, int32_t head_dim, int32_t row_offset,
                  const SymbolsRef* symbols, const char* a_name, bool cache_only_ok = false) {
  FLASHOMNI_CHECK_ARG(a.defined() && a.device == Device::kCUDA, a_name, "expected a CUDA tensor");
  FLASHOMNI_CHECK_ARG(a.dtype == DType::kBFloat16 || a.dtype == DType::kFloat16, a_name,
                      "the sm_90a kernel takes bfloat16 or float16, got ", dtype_name(a.dtype));
  for (const auto& [t, name] : {std::pair{&weight, "weight"}, std::pair{&out, "out"}}) {
    if (t == &out && !out.defined() && cache_only_ok) continue;
    FLASHOMNI_CHECK_ARG(t->defined() && t->device == Device::kCUDA, name, "expected a CUDA tensor");
    FLASHOMNI_CHECK_ARG(t->dtype == a.dtype, name, "expected dtype ", dtype_name(a.dtype),
                        " (same as ", a_name, "), got ", dtype_name(t->dtype));
  }
  if (bias.defined()) {
    FLASHOMNI_CHECK_ARG(bias.device == Device::kCUDA && bias.dtype == a.dtype && bias.ndim == 1 &&
                            (bias.stride[0] == 1 || bias.shape[0] <= 1),
                        "bias", "expected a contiguous 1-D CUDA tensor of dtype ",
                        dtype_name(a.dtype));
  }
  if (head_dim != 64 && head_dim != 128 && head_dim != 256) {
    fail_unsupported("sparse GEMM on CUDA: head_dim must be 64, 128 or 256, got ", head_dim);
  }
  if (heads < 1 || heads > gemm::kMaxHeads) {
    fail_unsupported("sparse GEMM on CUDA: heads must be in [1, ", gemm::kMaxHeads, "], got ",
                     heads);
  }
  FLASHOMNI_CHECK_ARG(row_offset >= 0, "row_offset", "expected >= 0, got ", row_offset);
  if (symbols != nullptr) {
    FLASHOMNI_CHECK_ARG(symbols->device == Device::kCUDA && symbols->q_bits != nullptr,
                        "symbols.q_bits", "expected device-resident words");
    if (symbols->shape.block_q % kTileM != 0) {
      fail_unsupported("sparse GEMM on CUDA: block_q must be a multiple of ", kTileM, ", got ",
                       symbols->shape.block_q);
    }
    FLASHOMNI_CHECK_ARG(symbols->shape.heads == heads, "symbols.heads", "expected ", heads,
                        ", got ", symbols->shape.heads);
  }
  if (!device_is_sm90()) fail_unsupported("sparse GEMM on CUDA needs an sm_90 (Hopper) device");
}

void check_tma_operand(const Operand3& o, const TensorRef& t, const char* name) {
  const auto addr = reinterpret_cast<std::uintptr_t>(t.data);
  const int64_t elem = static_cast<int64_t>(dtype_size(t.dtype));
  FLASHOMNI_CHECK_ARG(addr % 16 == 0 && (o.row_stride * elem) % 16 == 0 &&
                          (o.batch == 1 || (o.batch_stride * elem) % 16 == 0),
                      name,
                      "TMA needs a 16-byte aligned base and row/batch strides that are "
                      "multiples of 16 bytes");
}

// Store maps: 64-row boxes of 128 bytes, the epilogue's staging unit.
CUtensorMap store_map(const TensorRef& t, const Operand3& o) {
  const int32_t elem = static_cast<int32_t>(dtype_size(t.dtype));
  return make_tensor_map(t.data, elem, o.batch, o.rows, o.cols, o.row_stride, o.batch_stride,
                         gemm::kEpilogueRows, 128 / elem);
}

// A launcher switch read from the environment at every call: `fallback` when `name` is unset,
// off when it is "0", on otherwise.
bool env_switch(const char* name, bool fallback) {
  const char* env = std::getenv(name);
  return env == nullptr ? fallback : std::strcmp(env, "0") != 0;
}

// The last-round K split (gemm_params.h, last_round_k_parts) serves GEMM-Q and GEMM-O dispatch
// whose tiles reach 2 x kMinSplitKBlocks k-blocks; FLASHOMNI_GEMM_SPLIT_K=0 turns it off (the last
// round then runs as 128-column halves where they fit, as shorter tiles always do). Read at every
// call, so a program can compare both.
bool split_k_enabled(GemmMode mode, int64_t tile_k_blocks) {
  if (mode == GemmMode::kOUpdate || tile_k_blocks < 2 * gemm::kMinSplitKBlocks) return false;
  return env_switch("FLASHOMNI_GEMM_SPLIT_K", true);
}

// Grid and workspace of a launch whose list has at most `max_tiles` whole tiles (exactly that
// many when `exact`: no planner) of at most `tile_k_blocks` k-blocks, or `max_items` items with
// halves when it does not split. With the split, up to kMaxSplitK units per tile, so a short list
// may take more CTAs than tiles.
struct LaunchShape {
  int grid = 1;
  bool split = false;  // the kernel may K-split (needs the split workspace)
  std::size_t plan_bytes = 0;
  std::size_t bytes = 0;  // plan + split workspace
};

// 2-CTA clusters multicasting A (GemmKernelParams::cluster) need the pair's items k and k ^ 1 to
// exist together (an even count) and to read the same A rows in the same k-block order: dense
// GEMM-Q items are two head groups (or halves) of one row tile when a row tile has an even
// number of groups; GEMM-O items two column tiles of one row entry when n_tiles is even (its
// halves then start at an even index too). Not the K split (parts of different lengths).
// Where, measured on the H100 (gemm_notes.md item 19, same-call A/Bs): dense GEMM-Q (sustained
// x cuBLAS +2-4 % at M >= 16896, neutral at 4608) and GEMM-O update with an fp32 cache or a
// long K (1-9 % faster); not dispatch (no gain), not the staged 16-bit cache update at short K
// (2-8 % slower at M = 4608), not planned GEMM-Q lists, whose neighbours are often other row
// tiles (density 0.1 2-4 % slower: pairs that share nothing but their pace).
// FLASHOMNI_GEMM_CLUSTER=0 turns them off (read at every call).
bool cluster_pairs_items(const GemmKernelParams& kp, const LaunchShape& shape, bool planned,
                         bool long_k) {
  if (shape.split || shape.grid % 2 != 0) return false;
  if (!env_switch("FLASHOMNI_GEMM_CLUSTER", true)) return false;
  if (kp.mode == GemmMode::kQ) {
    return !planned && kp.groups_div.d % 2 == 0 && kp.dense_items % 2 == 0;
  }
  return kp.mode == GemmMode::kOUpdate && kp.n_tiles % 2 == 0 && (kp.cache_fp32 || long_k);
}

// The pair K split (GemmKernelParams::pair_split): a dense GEMM-Q list in a cluster launch
// whose last round runs as halves runs it instead as both K halves of each group, one per CTA
// of the pair, the partial crossing over DSMEM. Needs an even k-block count (equal halves: the
// pair's CTAs release each other's ring stages, so both must walk as many).
// Measured on the H100 (gemm_notes.md item 26, same library, sustained): dense gemm_q at
// M = 4608 1.3-3.0 % faster than with the halves. FLASHOMNI_GEMM_PAIR_SPLIT=0 or
// FLASHOMNI_GEMM_SPLIT_K=0 keep the halves (read at every call).
bool q_pair_split(const GemmKernelParams& kp, bool planned) {
  if (kp.mode != GemmMode::kQ || planned || !kp.cluster) return false;
  if (kp.split_from >= kp.dense_items || kp.k_blocks % 2 != 0) return false;
  return env_switch("FLASHOMNI_GEMM_SPLIT_K", true) &&
         env_switch("FLASHOMNI_GEMM_PAIR_SPLIT", true);
}

// GEMM-Q tall items (plan_q_paired: one-head partial groups of the same head paired across row
// tiles). Opt-in, FLASHOMNI_GEMM_TALL=1 (read at every call, for same-call A/Bs): on the H100
// correct, 1.04-1.22x the time without at M = 4608, 0.98-1.11x at M >= 16896 (gemm_notes item 20).
bool tall_items_enabled() {
  return env_switch("FLASHOMNI_GEMM_TALL", false);
}

// The bias staged in shared memory by bulk copies (GemmKernelParams::bias_staged), whose ends
// must be 16-byte aligned: the bias pointer, and N % 8 == 0 for GEMM-O's last column tile (GEMM-Q
// copies whole heads, head_dim x 2 >= 128 bytes). Otherwise, or with FLASHOMNI_GEMM_BIAS_STAGED=0
// (read at every call, for same-call A/Bs), the consumers load it from global memory.
bool bias_staged(const GemmKernelParams& kp) {
  if (kp.bias == nullptr || reinterpret_cast<std::uintptr_t>(kp.bias) % 16 != 0) return false;
  if (kp.mode != GemmMode::kQ && kp.cols % 8 != 0) return false;
  return env_switch("FLASHOMNI_GEMM_BIAS_STAGED", true);
}

LaunchShape launch_shape(GemmMode mode, int64_t max_tiles, int64_t max_items, bool exact,
                         int64_t tile_k_blocks, std::size_t plan_bytes) {
  LaunchShape s;
  const bool split = split_k_enabled(mode, tile_k_blocks);
  const int64_t units = split ? std::max<int64_t>(max_tiles, 1) * gemm::kMaxSplitK : max_items;
  s.grid = static_cast<int>(std::min<int64_t>(sm_count(), std::max<int64_t>(units, 1)));
  s.split =
      split && (!exact || gemm::last_round_k_parts(static_cast<int32_t>(max_tiles), s.grid) > 1);
  if (split && !s.split) {  // a dense list that does not split: as without the split
    s.grid = static_cast<int>(std::min<int64_t>(sm_count(), std::max<int64_t>(max_items, 1)));
  }
  s.plan_bytes = plan_bytes;
  s.bytes = s.plan_bytes + (s.split ? gemm::split_workspace_bytes(s.grid) : 0);
  return s;
}

// Enqueues the planner (when symbols are given: its list goes to the workspace, [count | items]),
// or the split flags' memset (dense lists that split, not runs on a plan's list), and the
// persistent kernel, one CTA per SM at most, as `planning` says.
void launch(GemmKernelParams kp, GemmPlanParams pp, const SymbolsRef* symbols, DType dtype,
            const gemm::GemmTensorMaps& maps, const LaunchShape& shape, void* workspace,
            const Planning& planning, cudaStream_t stream) {
  using Step = Planning::Step;
  const int grid = shape.grid;
  kp.grid_div = gemm::FastDiv(grid);
  kp.row_tiles_div = gemm::FastDiv(kp.row_tiles);
  kp.n_tiles_div = gemm::FastDiv(kp.n_tiles);
  kp.groups_div = gemm::FastDiv(kp.slots > 0 ? (kp.heads + kp.slots - 1) / kp.slots : 1);
  const int32_t k_blocks = kp.mode == GemmMode::kQ
                               ? kp.k_blocks
                               : kp.heads * kp.head_dim / gemm::kTileK + kp.extra_k_blocks;
  const bool long_k = k_blocks >= gemm::kThreeStageKBlocks &&
                      static_cast<int64_t>(kp.batch) * kp.rows >= gemm::kThreeStageRows;
  // GEMM-O with a 16-bit cache (not cache-only) always takes 3 stages: their one-pass staging
  // buffers hold a whole 16-bit fragment, which lets dispatch load C by TMA during the mainloop
  // (cache_staged in gemm_epilogue.cuh); update must take the same path for bit-equal Y.
  const bool staged_cache = kp.mode != GemmMode::kQ && !kp.cache_fp32 && !kp.cache_only;
  kp.stages = long_k || staged_cache ? gemm::kMaxStages - 1 : gemm::kMaxStages;
  kp.cluster = cluster_pairs_items(kp, shape, symbols != nullptr, long_k) ? 1 : 0;
  kp.pair_split = q_pair_split(kp, symbols != nullptr) ? 1 : 0;
  kp.bias_staged = bias_staged(kp) ? 1 : 0;
  if (symbols != nullptr) {
    pp.symbols = *symbols;
    pp.batch = kp.batch;
    pp.rows = kp.rows;
    pp.heads = kp.heads;
    pp.row_tiles = kp.row_tiles;
    pp.block_q = kp.block_q;
    pp.chunks_per_block = kp.chunks_per_block;
    pp.first_block = kp.first_block;
    pp.row_offset = kp.row_offset;
    pp.ctas = shape.split ? 0 : static_cast<int32_t>(sm_count());  // halves only without it
    pp.pair_heads =
        kp.mode == GemmMode::kQ && kp.slots == 2 && !shape.split && tall_items_enabled();
    pp.item_count = static_cast<int32_t*>(workspace);
    pp.items = reinterpret_cast<int4*>(static_cast<char*>(workspace) + 256);
    kp.items = pp.items;
    kp.item_count = pp.item_count;
  }
  if (planning.step == Step::kRun || planning.made != nullptr) {
    const GemmPlan record = gemm::plan_record(pp, shape.grid, shape.split, symbols, workspace);
    if (planning.step == Step::kRun) gemm::check_plan(*planning.use, record);
    if (planning.made != nullptr) *planning.made = record;
  }
  const bool plans = symbols != nullptr && planning.step != Step::kRun;
  if (shape.split) {
    char* split_ws = static_cast<char*>(workspace) + shape.plan_bytes;
    kp.split_k = 1;
    kp.split_flags = reinterpret_cast<int32_t*>(split_ws);
    kp.split_partials = reinterpret_cast<float*>(split_ws + gemm::split_flags_bytes(grid));
    if (plans) {
      pp.split_flags = kp.split_flags;
      pp.split_flag_count = grid;
    } else if (planning.step != Step::kRun) {
      // A dense list's workspace may be fresh, so a dense call (or a dense plan, once) zeroes
      // the flags. A plan's run needs no reset: the planner or this memset zeroed them when the
      // plan was made, and every run's owners leave them at zero (add_partials).
      FLASHOMNI_CUDA_CHECK(
          cudaMemsetAsync(kp.split_flags, 0, static_cast<std::size_t>(grid) * 4, stream));
    }
  }
  if (plans) gemm::launch_gemm_planner(pp, stream);
  if (planning.step == Step::kPlan) return;
  if (dtype == DType::kBFloat16) {
    gemm::launch_sparse_gemm_bf16(kp, maps, grid, stream);
  } else {
    gemm::launch_sparse_gemm_fp16(kp, maps, grid, stream);
  }
}

void set_row_tiling(GemmKernelParams& kp, const RowTiling& r, int32_t row_offset) {
  kp.row_tiles = r.row_tiles;
  kp.block_q = r.block_q;
  kp.chunks_per_block = r.chunks_per_block;
  kp.first_block = r.first_block;
  kp.row_offset = row_offset;
}

int64_t q_max_items(const GemmQParams& p) {
  const Operand3 x = as_3d(p.x, "x");
  const RowTiling r = row_tiling(x.rows, p.row_offset, p.symbols);
  const int32_t slots = kTileN / std::max(p.head_dim, 1);
  const int64_t groups = x.batch * r.row_tiles * ((p.heads + slots - 1) / std::max(slots, 1));
  return slots >= 2 ? 2 * groups : groups;  // at most every group split in halves
}

int64_t o_max_entries(const GemmOParams& p) {
  const Operand3 a = as_3d(p.a, "a");
  return a.batch * row_tiling(a.rows, p.row_offset, p.symbols).row_tiles;
}

// Dense GEMM-Q: groups of `slots` heads per row tile (the dense index's items before halves).
int64_t q_groups(const GemmQParams& p) {
  const Operand3 x = as_3d(p.x, "x");
  const int32_t slots = kTileN / std::max(p.head_dim, 1);
  return x.batch * row_tiling(x.rows, p.row_offset, p.symbols).row_tiles *
         ((p.heads + slots - 1) / std::max(slots, 1));
}

int64_t q_k_blocks(const GemmQParams& p) {
  return (as_3d(p.x, "x").cols + kTileK - 1) / kTileK;
}

// Dense lists: the items of the dense index without the split (halves of the last round's
// groups where last_round_split takes them).
int64_t q_dense_items(const GemmQParams& p, int64_t groups) {
  const int32_t slots = kTileN / std::max(p.head_dim, 1);
  if (p.heads % std::max(slots, 1) != 0) return groups;
  const int32_t from = gemm::last_round_split(static_cast<int32_t>(groups), 0, slots,
                                              static_cast<int32_t>(sm_count()));
  return groups + (groups - from);
}

LaunchShape q_launch_shape(const GemmQParams& p) {
  if (p.symbols != nullptr) {
    const int64_t items = q_max_items(p);
    return launch_shape(GemmMode::kQ, items, items, false, q_k_blocks(p),
                        gemm::plan_workspace_bytes(items));
  }
  const int64_t groups = q_groups(p);
  return launch_shape(GemmMode::kQ, groups, q_dense_items(p, groups), true, q_k_blocks(p), 0);
}

// gemm_o_workspace_size serves update and dispatch alike: it takes dispatch's (the larger).
LaunchShape o_launch_shape(const GemmOParams& p, GemmMode mode) {
  const Operand3 a = as_3d(p.a, "a");
  const int64_t entries = o_max_entries(p);
  const int64_t tiles = entries * ((as_3d(p.weight, "weight").rows + kTileN - 1) / kTileN);
  const int64_t k_blocks = (a.cols + kTileK - 1) / kTileK;  // heads and extra columns
  const bool planner = p.symbols != nullptr;
  return launch_shape(mode, tiles, tiles, !planner, k_blocks,
                      planner ? gemm::plan_workspace_bytes(entries) : 0);
}

void check_workspace(const void* workspace, std::size_t bytes, std::size_t needed) {
  FLASHOMNI_CHECK_ARG(bytes >= needed, "workspace_bytes", "expected at least ", needed, ", got ",
                      bytes);
  FLASHOMNI_CHECK_ARG(needed == 0 || (workspace != nullptr &&
                                      reinterpret_cast<std::uintptr_t>(workspace) % 256 == 0),
                      "workspace", "expected a 256-byte aligned device buffer");
}

void run_gemm_o(const GemmOParams& p, GemmMode mode, void* workspace, std::size_t workspace_bytes,
                void* stream_ptr, const Planning& planning) {
  check_gemm_o(p, Device::kCUDA, mode == GemmMode::kOUpdate);
  // gemm_o_update with no out (null data) stores the cache alone (gemm.h).
  const bool cache_only = mode == GemmMode::kOUpdate && p.out.data == nullptr;
  check_common(p.a, p.weight, p.bias, p.out, p.heads, p.head_dim, p.row_offset, p.symbols, "a",
               cache_only);
  const Operand3 a = as_3d(p.a, "a");
  const Operand3 w = as_3d(p.weight, "weight");
  const Operand3 out = cache_only ? as_3d(p.cache, "cache") : as_3d(p.out, "out");
  const int64_t head_cols = static_cast<int64_t>(p.heads) * p.head_dim;
  FLASHOMNI_CHECK_ARG(a.cols >= head_cols, "a", "expected at least heads * head_dim = ", head_cols,
                      " columns, got ", a.cols);
  FLASHOMNI_CHECK_ARG(w.batch == 1 && w.cols == a.cols, "weight", "expected [N, ", a.cols, "]");
  FLASHOMNI_CHECK_ARG(out.batch == a.batch && out.rows == a.rows && out.cols == w.rows, "out",
                      "expected [", a.batch, ", ", a.rows, ", ", w.rows, "]");
  FLASHOMNI_CHECK_ARG(p.cache.defined() && p.cache.device == Device::kCUDA &&
                          (p.cache.dtype == DType::kFloat32 || p.cache.dtype == p.a.dtype),
                      "cache", "expected a CUDA tensor of float32 or ", dtype_name(p.a.dtype));
  const Operand3 cache = as_3d(p.cache, "cache");
  FLASHOMNI_CHECK_ARG(cache.batch == a.batch && cache.rows == a.rows && cache.cols == w.rows,
                      "cache", "expected [", a.batch, ", ", a.rows, ", ", w.rows, "]");
  FLASHOMNI_CHECK_ARG(out.cols % 2 == 0 && out.row_stride % 2 == 0 && cache.row_stride % 2 == 0,
                      "out", "the kernel stores column pairs: N and row strides must be even");
  check_tma_operand(a, p.a, "a");
  check_tma_operand(w, p.weight, "weight");
  if (!cache_only) check_tma_operand(out, p.out, "out");
  check_tma_operand(cache, p.cache, "cache");
  if (a.batch == 1 && p.symbols != nullptr) {
    FLASHOMNI_CHECK_ARG(p.symbols->shape.batch == 1, "symbols.batch", "expected 1");
  } else if (p.symbols != nullptr) {
    FLASHOMNI_CHECK_ARG(p.symbols->shape.batch == a.batch, "symbols.batch", "expected ", a.batch);
  }
  // The workspace is sized for dispatch (gemm_o_workspace_size), whatever this call's mode.
  const LaunchShape dispatch_shape = o_launch_shape(p, GemmMode::kODispatch);
  check_workspace(workspace, workspace_bytes, dispatch_shape.bytes);
  if (a.rows == 0 || w.rows == 0) return gemm::record_empty(planning, mode, p.symbols, workspace);
  const LaunchShape shape = mode == GemmMode::kODispatch ? dispatch_shape : o_launch_shape(p, mode);
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  const RowTiling r = row_tiling(a.rows, p.row_offset, p.symbols);

  GemmKernelParams kp;
  kp.mode = mode;
  kp.batch = static_cast<int32_t>(a.batch);
  kp.rows = static_cast<int32_t>(a.rows);
  kp.cols = static_cast<int32_t>(w.rows);
  kp.heads = p.heads;
  kp.head_dim = p.head_dim;
  kp.extra_k_blocks = static_cast<int32_t>((a.cols - head_cols + kTileK - 1) / kTileK);
  kp.n_tiles = static_cast<int32_t>((w.rows + kTileN - 1) / kTileN);
  kp.b_box_rows = 128;
  set_row_tiling(kp, r, p.row_offset);
  const int64_t entries = o_max_entries(p);
  kp.dense_items = static_cast<int32_t>(entries * kp.n_tiles);
  kp.out = cache_only ? nullptr : p.out.data;
  kp.out_row_stride = out.row_stride;
  kp.out_batch_stride = out.batch_stride;
  kp.bias = p.bias.data;
  kp.cache = p.cache.data;
  kp.cache_fp32 = p.cache.dtype == DType::kFloat32;
  kp.cache_row_stride = cache.row_stride;
  kp.cache_batch_stride = cache.batch_stride;
  kp.cache_only = cache_only ? 1 : 0;
  GemmPlanParams pp;
  pp.mode = mode;
  pp.k_blocks_per_head = p.head_dim / kTileK;
  pp.extra_k_blocks = kp.extra_k_blocks;
  pp.cache_only = kp.cache_only;
  gemm::GemmTensorMaps maps;
  maps.a = make_tensor_map(p.a.data, 2, a.batch, a.rows, a.cols, a.row_stride, a.batch_stride,
                           kTileM, kTileK);
  maps.a_half = make_tensor_map(p.a.data, 2, a.batch, a.rows, a.cols, a.row_stride, a.batch_stride,
                                kTileM / 2, kTileK);
  maps.b = make_tensor_map(p.weight.data, 2, 1, w.rows, w.cols, w.row_stride, 0, 128, kTileK);
  maps.cache = store_map(p.cache, cache);
  maps.out = cache_only ? maps.cache : store_map(p.out, out);
  launch(kp, pp, p.symbols, p.a.dtype, maps, shape, workspace, planning, stream);
}

void run_gemm_q(const GemmQParams& p, void* workspace, std::size_t workspace_bytes,
                void* stream_ptr, const Planning& planning) {
  check_gemm_q(p, Device::kCUDA);
  check_common(p.x, p.weight, p.bias, p.out, p.heads, p.head_dim, p.row_offset, p.symbols, "x");
  const Operand3 x = as_3d(p.x, "x");
  const Operand3 w = as_3d(p.weight, "weight");
  const Operand3 out = as_3d(p.out, "out");
  const int64_t n = static_cast<int64_t>(p.heads) * p.head_dim;
  FLASHOMNI_CHECK_ARG(w.batch == 1 && w.rows == n && w.cols == x.cols, "weight", "expected [", n,
                      ", ", x.cols, "]");
  FLASHOMNI_CHECK_ARG(out.batch == x.batch && out.rows == x.rows && out.cols == n, "out",
                      "expected [", x.batch, ", ", x.rows, ", ", n, "]");
  FLASHOMNI_CHECK_ARG(!p.bias.defined() || p.bias.shape[0] == n, "bias", "expected [", n, "]");
  FLASHOMNI_CHECK_ARG(out.row_stride % 2 == 0, "out", "row stride must be even");
  check_tma_operand(x, p.x, "x");
  check_tma_operand(w, p.weight, "weight");
  check_tma_operand(out, p.out, "out");
  if (p.symbols != nullptr) {
    FLASHOMNI_CHECK_ARG(p.symbols->shape.batch == x.batch, "symbols.batch", "expected ", x.batch);
  }
  const LaunchShape shape = q_launch_shape(p);
  check_workspace(workspace, workspace_bytes, shape.bytes);
  if (x.rows == 0) return gemm::record_empty(planning, GemmMode::kQ, p.symbols, workspace);
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  const RowTiling r = row_tiling(x.rows, p.row_offset, p.symbols);

  GemmKernelParams kp;
  kp.mode = GemmMode::kQ;
  kp.batch = static_cast<int32_t>(x.batch);
  kp.rows = static_cast<int32_t>(x.rows);
  kp.cols = static_cast<int32_t>(n);
  kp.heads = p.heads;
  kp.head_dim = p.head_dim;
  kp.slots = kTileN / p.head_dim;
  kp.k_blocks = static_cast<int32_t>((x.cols + kTileK - 1) / kTileK);
  kp.b_box_rows = p.head_dim;
  set_row_tiling(kp, r, p.row_offset);
  kp.dense_items = static_cast<int32_t>(q_max_items(p));
  if (p.symbols == nullptr) {
    // The dense index: whole groups, then the halves q_dense_items counts (none with the split).
    const int64_t groups = q_groups(p);
    kp.dense_items = static_cast<int32_t>(shape.split ? groups : q_dense_items(p, groups));
    kp.split_from = static_cast<int32_t>(2 * groups - kp.dense_items);
  }
  kp.out = p.out.data;
  kp.out_row_stride = out.row_stride;
  kp.out_batch_stride = out.batch_stride;
  kp.bias = p.bias.data;
  GemmPlanParams pp;
  pp.mode = GemmMode::kQ;
  pp.slots = kp.slots;
  gemm::GemmTensorMaps maps;
  maps.a = make_tensor_map(p.x.data, 2, x.batch, x.rows, x.cols, x.row_stride, x.batch_stride,
                           kTileM, kTileK);
  maps.a_half = make_tensor_map(p.x.data, 2, x.batch, x.rows, x.cols, x.row_stride, x.batch_stride,
                                kTileM / 2, kTileK);
  maps.b =
      make_tensor_map(p.weight.data, 2, 1, w.rows, w.cols, w.row_stride, 0, p.head_dim, kTileK);
  maps.out = store_map(p.out, out);
  maps.cache = maps.out;
  launch(kp, pp, p.symbols, p.x.dtype, maps, shape, workspace, planning, stream);
}

GemmPlan plan_gemm_o(const GemmOParams& p, GemmMode mode, void* workspace,
                     std::size_t workspace_bytes, void* stream) {
  GemmPlan plan;
  run_gemm_o(p, mode, workspace, workspace_bytes, stream, plan_only(&plan));
  return plan;
}

}  // namespace

std::size_t gemm_q_workspace_size(const GemmQParams& p) {
  return q_launch_shape(p).bytes;
}

std::size_t gemm_o_workspace_size(const GemmOParams& p) {
  return o_launch_shape(p, GemmMode::kODispatch).bytes;
}

GemmPlan gemm_q_plan(const GemmQParams& p, void* workspace, std::size_t workspace_bytes,
                     void* stream) {
  GemmPlan plan;
  run_gemm_q(p, workspace, workspace_bytes, stream, plan_only(&plan));
  return plan;
}

void gemm_q(const GemmQParams& p, void* workspace, std::size_t workspace_bytes, void* stream,
            const GemmPlan* plan) {
  run_gemm_q(p, workspace, workspace_bytes, stream, planning_for(plan));
}

GemmPlan gemm_o_update_plan(const GemmOParams& p, void* workspace, std::size_t workspace_bytes,
                            void* stream) {
  return plan_gemm_o(p, GemmMode::kOUpdate, workspace, workspace_bytes, stream);
}

GemmPlan gemm_o_dispatch_plan(const GemmOParams& p, void* workspace, std::size_t workspace_bytes,
                              void* stream) {
  return plan_gemm_o(p, GemmMode::kODispatch, workspace, workspace_bytes, stream);
}

void gemm_o_update(const GemmOParams& p, void* workspace, std::size_t workspace_bytes, void* stream,
                   const GemmPlan* plan) {
  run_gemm_o(p, GemmMode::kOUpdate, workspace, workspace_bytes, stream, planning_for(plan));
}

void gemm_o_dispatch(const GemmOParams& p, void* workspace, std::size_t workspace_bytes,
                     void* stream, const GemmPlan* plan) {
  run_gemm_o(p, GemmMode::kODispatch, workspace, workspace_bytes, stream, planning_for(plan));
}

}  // namespace flashomni::cuda
