// FlashOmni CUDA layer (GEMM): the plan records of gemm_plan.h.
#include "cuda/gemm/gemm_plan.h"

#include <algorithm>
#include <iterator>

#include "flashomni/common.h"

namespace flashomni::cuda::gemm {

Planning planning_for(const GemmPlan* use) {
  Planning g;
  g.step = use != nullptr ? Planning::Step::kRun : Planning::Step::kPlanAndRun;
  g.use = use;
  return g;
}

Planning plan_only(GemmPlan* made) {
  Planning g;
  g.step = Planning::Step::kPlan;
  g.made = made;
  return g;
}

namespace {

const char* plan_op_name(GemmPlanOp op) {
  switch (op) {
    case GemmPlanOp::kQ:
      return "gemm_q_plan";
    case GemmPlanOp::kOUpdate:
      return "gemm_o_update_plan";
    case GemmPlanOp::kODispatch:
      return "gemm_o_dispatch_plan";
    default:
      return "no planning call";
  }
}

}  // namespace

GemmPlanOp plan_op(GemmMode mode) {
  switch (mode) {
    case GemmMode::kQ:
      return GemmPlanOp::kQ;
    case GemmMode::kOUpdate:
      return GemmPlanOp::kOUpdate;
    default:
      return GemmPlanOp::kODispatch;
  }
}

GemmPlan plan_record(const GemmPlanParams& pp, int grid, bool split, const SymbolsRef* symbols,
                     const void* workspace) {
  GemmPlan r;
  r.op = plan_op(pp.mode);
  r.workspace = workspace;
  r.q_bits = symbols != nullptr ? symbols->q_bits : nullptr;
  const SymbolShape s = symbols != nullptr ? symbols->shape : SymbolShape{};
  const int32_t key[] = {pp.batch,
                         pp.rows,
                         pp.heads,
                         pp.slots,
                         pp.row_tiles,
                         pp.block_q,
                         pp.chunks_per_block,
                         pp.first_block,
                         pp.row_offset,
                         pp.k_blocks_per_head,
                         pp.extra_k_blocks,
                         pp.cache_only,
                         pp.ctas,
                         pp.pair_heads,
                         grid,
                         split ? 1 : 0,
                         s.batch,
                         s.heads,
                         s.q_blocks,
                         s.block_q};
  static_assert(sizeof(key) == sizeof(r.key), "GemmPlan::key holds every entry");
  std::copy(std::begin(key), std::end(key), r.key);
  return r;
}

void check_plan(const GemmPlan& plan, const GemmPlan& call) {
  FLASHOMNI_CHECK_ARG(plan.op == call.op, "plan", "was made by ", plan_op_name(plan.op),
                      "; this call needs one from ", plan_op_name(call.op));
  FLASHOMNI_CHECK_ARG(plan.workspace == call.workspace, "plan",
                      "its list is in another workspace than this call's");
  FLASHOMNI_CHECK_ARG(plan.q_bits == call.q_bits, "plan",
                      "was made for other symbols (symbols.q_bits differs)");
  FLASHOMNI_CHECK_ARG(std::equal(std::begin(plan.key), std::end(plan.key), call.key), "plan",
                      "was made for other shapes, row_offset, symbol grid or FLASHOMNI_GEMM_* "
                      "switches than this call's: plan again");
}

void record_empty(const Planning& planning, GemmMode mode, const SymbolsRef* symbols,
                  const void* workspace) {
  if (planning.made == nullptr) return;
  *planning.made = GemmPlan{};
  planning.made->op = plan_op(mode);
  planning.made->workspace = workspace;
  planning.made->q_bits = symbols != nullptr ? symbols->q_bits : nullptr;
}

}  // namespace flashomni::cuda::gemm
