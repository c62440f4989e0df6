// FlashOmni CUDA layer: the GPU entry points (sm_90a). Same operation names as the CPU backend.
// Every call plans on `stream` (GPU-built work lists in the caller's workspace) and then runs: no
// host synchronisation, no allocation, so a whole dispatch step can be captured in a CUDA graph.
// Only declared when the library is built with CUDA (FLASHOMNI_WITH_CUDA).
#pragma once

#include <cstddef>

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

std::size_t gemm_q_workspace_size(const GemmQParams& p);
void gemm_q(const GemmQParams& p, void* workspace, std::size_t workspace_bytes, void* stream);

std::size_t gemm_o_workspace_size(const GemmOParams& p);
void gemm_o_update(const GemmOParams& p, void* workspace, std::size_t workspace_bytes,
                   void* stream);
void gemm_o_dispatch(const GemmOParams& p, void* workspace, std::size_t workspace_bytes,
                     void* stream);

}  // namespace flashomni::cuda
