// FlashOmni CUDA layer (GEMM): plan once, run many (cuda_ops.h). What a GEMM call enqueues, and
// the host record of a planned list that a later call checks its own arguments against.
#pragma once

#include <cstddef>

#include "cuda/gemm/gemm_params.h"
#include "flashomni/cuda_ops.h"

namespace flashomni::cuda::gemm {

// What a call enqueues (cuda_ops.h, "Plan once, run many"): the planner and the GEMM, the
// planner alone (recording what it planned for in `made`), or the GEMM alone on the list that
// `use` records.
struct Planning {
  enum class Step { kPlanAndRun, kPlan, kRun };
  Step step = Step::kPlanAndRun;
  const GemmPlan* use = nullptr;
  GemmPlan* made = nullptr;
};

Planning planning_for(const GemmPlan* use);
Planning plan_only(GemmPlan* made);

// The public name of a call's mode (GemmPlan::op).
GemmPlanOp plan_op(GemmMode mode);

// Everything the planner's list depends on besides the symbols' values, including the launch
// choices read from the environment at every call (FLASHOMNI_GEMM_SPLIT_K, FLASHOMNI_GEMM_TALL).
GemmPlan plan_record(const GemmPlanParams& pp, int grid, bool split, const SymbolsRef* symbols,
                     const void* workspace);

// Throws fail_argument("plan", ...) naming what differs between the plan and this call's record.
void check_plan(const GemmPlan& plan, const GemmPlan& call);

// A call with no rows enqueues nothing; its plan records the operation and buffers alone.
void record_empty(const Planning& planning, GemmMode mode, const SymbolsRef* symbols,
                  const void* workspace);

}  // namespace flashomni::cuda::gemm
