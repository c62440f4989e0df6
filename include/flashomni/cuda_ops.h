// FlashOmni CUDA layer: the GPU entry points (sm_90a). Same operation names as the CPU backend.
// Every call plans on `stream` (GPU-built work lists in the caller's workspace) and then runs: no
// host synchronisation, no allocation, so a whole dispatch step can be captured in a CUDA graph.
// Only declared when the library is built with CUDA (FLASHOMNI_WITH_CUDA).
#pragma once

#include <cstddef>
#include <cstdint>

#include "flashomni/attention.h"
#include "flashomni/gemm.h"

namespace flashomni::cuda {

// Bytes of device workspace the call needs (0 is valid); depends only on shapes (and the device's
// SM count), never on symbol values, so callers can allocate once per shape. GEMM-Q and GEMM-O
// with K >= 5120 also reserve SMs x 128 KB for the last round's K split, even without symbols.
// A call's workspace must not be shared with a call running concurrently on another stream.
std::size_t sparse_attention_workspace_size(const AttentionParams& p);
void sparse_attention(const AttentionParams& p, void* workspace, std::size_t workspace_bytes,
                      void* stream);

// Plan once, run many. A sparse GEMM call plans its work list from the symbols (a one-CTA
// planner kernel, ~6 us on the H100, that the GEMM waits for) and then runs. Between two full
// steps the symbols' bits stay the same, so the dispatch steps can reuse one list:
// <op>_plan enqueues the planner alone, the list going into `workspace`, and returns the record
// of what it planned for; <op> given that plan enqueues the GEMM alone, reading the list. Such a
// call checks on the host that its arguments, workspace and operation are those of the plan
// (failing with an error naming "plan" otherwise), but it cannot see the symbols' values:
// rewriting them in place needs a new plan, as does any other call planning into the workspace.
// Without a plan (nullptr), <op> plans and runs. Dense calls (no symbols) plan nothing.
enum class GemmPlanOp : int32_t { kNone = 0, kQ = 1, kOUpdate = 2, kODispatch = 3 };
struct GemmPlan {
  GemmPlanOp op = GemmPlanOp::kNone;
  int32_t key[20] = {};  // the planner's inputs: shapes, tiling, row_offset, launch choices
  const void* workspace = nullptr;
  const uint32_t* q_bits = nullptr;  // the symbols planned from (nullptr: dense)
};

std::size_t gemm_q_workspace_size(const GemmQParams& p);
GemmPlan gemm_q_plan(const GemmQParams& p, void* workspace, std::size_t workspace_bytes,
                     void* stream);
void gemm_q(const GemmQParams& p, void* workspace, std::size_t workspace_bytes, void* stream,
            const GemmPlan* plan = nullptr);

// One workspace size for update and dispatch; a plan is made for one of them.
std::size_t gemm_o_workspace_size(const GemmOParams& p);
GemmPlan gemm_o_update_plan(const GemmOParams& p, void* workspace, std::size_t workspace_bytes,
                            void* stream);
GemmPlan gemm_o_dispatch_plan(const GemmOParams& p, void* workspace, std::size_t workspace_bytes,
                              void* stream);
void gemm_o_update(const GemmOParams& p, void* workspace, std::size_t workspace_bytes, void* stream,
                   const GemmPlan* plan = nullptr);
void gemm_o_dispatch(const GemmOParams& p, void* workspace, std::size_t workspace_bytes,
                     void* stream, const GemmPlan* plan = nullptr);

}  // namespace flashomni::cuda
