/* FlashOmni C API: the stable, framework-free entry points (plain C structs, int status codes).
 *
 * Everything a binding (the ctypes Python package, another language, an inference engine) needs:
 * the three operations (sparse_attention, gemm_q, gemm_o_update / gemm_o_dispatch), the sparse
 * symbols' validator, converters and density statistics. Each operation has the same name here as
 * in the C++ core (flashomni::cpu::*, flashomni::cuda::*) and in the Python package.
 *
 * Conventions
 *  - Every function returns an int status: FO_OK (0) or one of fo_status; it never throws and
 *    never aborts. On failure flashomni_last_error() returns a message naming the argument, e.g.
 *    "argument 'k': expected dtype bfloat16, got float16" (thread-local, valid until the next
 *    failing call on the same thread).
 *  - Arrays are fo_tensor views: data pointer, dtype, device, up to 4 dims, strides in ELEMENTS
 *    (not bytes). An optional tensor is "not given" when data == NULL.
 *  - Operations dispatch on the device of their first tensor (q, x, a): FO_CPU runs the
 *    multithreaded reference backend (workspace and stream ignored); FO_CUDA runs the sm_90a
 *    kernels asynchronously on `stream` (a cudaStream_t, NULL = legacy default stream) with a
 *    caller-owned device workspace of at least *_workspace_size() bytes, no host synchronisation
 *    and no allocation, so the call can be captured in a CUDA graph. A library built without
 *    CUDA returns FO_UNSUPPORTED for CUDA tensors.
 *
 * ABI stability
 *  - Enum values never change. Argument structs (fo_*_args) start with `struct_size`, which the
 *    caller sets to sizeof(the struct) of the header it was compiled with. Fields are only ever
 *    appended; the library accepts any struct_size from the first published size (ABI version 1) up
 *    to its own sizeof and treats absent trailing fields as zero. FLASHOMNI_ABI_VERSION is bumped
 *    when anything is appended; flashomni_abi_version() reports the library's.
 *  - fo_tensor, fo_symbols and fo_seqlens are frozen (version 1) and never change.
 *
 * Example (CPU, uniform batch B = 1, N = 256 tokens, H = 2 heads, d = 64, fp32, dense symbols
 * except that query block 1 of head 0 is cached and its output rows are left untouched):
 *
 *   float q[256 * 2 * 64], k[256 * 2 * 64], v[256 * 2 * 64], out[256 * 2 * 64];
 *   uint32_t q_bits[2] = {0x1u, 0x3u};          // [B, H, q_words]: head 0 only block 0 active
 *   uint32_t kv_bits[4] = {0x3u, 0x3u, 0x3u, 0x3u};  // [B, H, q_blocks, kv_words]
 *   fo_symbols s = {q_bits, kv_bits, 1, 2, 2, 2, 128, 128, FO_CPU};
 *   fo_attention_args a = {0};
 *   a.struct_size = sizeof(a);
 *   a.q = fo_tensor_contiguous(q, FO_FLOAT32, FO_CPU, 4, (int64_t[]){1, 256, 2, 64});
 *   a.k = fo_tensor_contiguous(k, FO_FLOAT32, FO_CPU, 4, (int64_t[]){1, 256, 2, 64});
 *   a.v = fo_tensor_contiguous(v, FO_FLOAT32, FO_CPU, 4, (int64_t[]){1, 256, 2, 64});
 *   a.out = fo_tensor_contiguous(out, FO_FLOAT32, FO_CPU, 4, (int64_t[]){1, 256, 2, 64});
 *   a.symbols = &s;                              // NULL = dense attention
 *   if (flashomni_sparse_attention(&a, NULL, 0, NULL) != FO_OK)
 *     fprintf(stderr, "flashomni: %s\n", flashomni_last_error());
 */
#ifndef FLASHOMNI_FLASHOMNI_H_
#define FLASHOMNI_FLASHOMNI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define FLASHOMNI_API __declspec(dllexport)
#else
#define FLASHOMNI_API __attribute__((visibility("default")))
#endif

/* Bumped whenever a field is appended to an argument struct or a function is added.
 * 1: operations, symbols, densities; 2: + policy (run_policy) and forecast; 3: + the policy's
 * query_score / out_now / out_prev (the output-change query score); 4: + GEMM plans
 * (fo_gemm_plan, the args' `plan`, flashomni_gemm_*_plan). */
#define FLASHOMNI_ABI_VERSION 4

/* Same values as flashomni::DType / Device / Status (common.h); never renumbered. */
typedef enum fo_dtype {
  FO_FLOAT32 = 0,
  FO_FLOAT16 = 1,
  FO_BFLOAT16 = 2,
  FO_FLOAT64 = 3,
  FO_INT32 = 4,
  FO_UINT32 = 5,
  FO_UINT8 = 6
} fo_dtype;

typedef enum fo_device { FO_CPU = 0, FO_CUDA = 1 } fo_device;

typedef enum fo_status {
  FO_OK = 0,
  FO_INVALID_ARGUMENT = 1, /* caller error: shape, dtype, stride, symbol size, NULL pointer, ... */
  FO_UNSUPPORTED = 2,      /* valid request this build/device cannot serve (no CUDA, head dim 96) */
  FO_CUDA_ERROR = 3,
  FO_INTERNAL = 4
} fo_status;

#define FO_MAX_DIMS 4

/* A non-owning array view. dtype / device hold fo_dtype / fo_device values. */
typedef struct fo_tensor {
  void* data;
  int32_t dtype;
  int32_t device;
  int32_t ndim;
  int64_t shape[FO_MAX_DIMS];
  int64_t strides[FO_MAX_DIMS]; /* in elements */
} fo_tensor;

/* Sparse symbols, bit-packed (layout in symbols.h / docs):
 *   q_bits : uint32 [batch, heads, ceil(q_blocks / 32)]           bit 1 = compute, 0 = cached
 *   kv_bits: uint32 [batch, heads, q_blocks, ceil(kv_blocks / 32)] bit 1 = keep, 0 = skip
 * Query block i of (b, h) is bit i % 32 of word i / 32 of its row; likewise key block j. */
typedef struct fo_symbols {
  const uint32_t* q_bits;
  const uint32_t* kv_bits;
  int32_t batch;
  int32_t heads; /* query heads */
  int32_t q_blocks;
  int32_t kv_blocks;
  int32_t block_q;  /* tokens per query block (128 by default) */
  int32_t block_kv; /* tokens per key block (128 by default) */
  int32_t device;   /* where q_bits / kv_bits live (fo_device) */
} fo_symbols;

/* Sequence lengths the symbols are used with. Uniform batch: cu_seqlens_* NULL, seqlen_* set.
 * Varlen: cu_seqlens_* are HOST int32 arrays of batch + 1 offsets (seqlen_* ignored). */
typedef struct fo_seqlens {
  int32_t batch;
  int32_t seqlen_q;
  int32_t seqlen_kv;
  const int32_t* cu_seqlens_q;
  const int32_t* cu_seqlens_kv;
} fo_seqlens;

/* sparse_attention (spec §2). Layouts (last dim contiguous):
 *   uniform: q/out [B, Nq, H, d], k/v [B, Nkv, Hkv, d], lse float32 [B, H, Nq]
 *   varlen : q/out [total_q, H, d], k/v [total_kv, Hkv, d], lse float32 [H, total_q],
 *            cu_seqlens_q/kv int32 [B + 1] on the tensors' device, max_seqlen_q/kv > 0.
 * q, k, v, out: one dtype of bf16 / fp16 (the CPU backend also takes fp32). lse optional.
 * softmax_scale 0 means 1 / sqrt(d). Cached (b, h, i): rows of out and lse are NOT written. */
typedef struct fo_attention_args {
  int32_t struct_size; /* = sizeof(fo_attention_args) */
  int32_t max_seqlen_q;
  int32_t max_seqlen_kv;
  float softmax_scale;
  fo_tensor q, k, v, out, lse;
  fo_tensor cu_seqlens_q, cu_seqlens_kv;
  const fo_symbols* symbols; /* NULL = dense */
} fo_attention_args;

/* gemm_q (spec §3): out = x weight^T + bias for active (query block, head) tiles only.
 *   x [M, K] or [B, M, K]; weight [heads * head_dim, K]; bias [heads * head_dim] optional;
 *   out [M, heads * head_dim] or [B, M, ...]. Row m is token m + row_offset of the symbols'
 *   sequence. Inactive tiles of out are not written. */
/* A GEMM work list planned once into a workspace (flashomni_gemm_q_plan, ..._o_update_plan,
 * ..._o_dispatch_plan), for calls of the same operation to run it without planning again while
 * the symbols' bits stay the same (the sparse steps between two full steps). The library fills
 * it; the caller keeps it with its workspace and passes it as the args' `plan`. A call given a
 * plan checks that its arguments, workspace and operation are the plan's (FO_INVALID_ARGUMENT
 * naming "plan" otherwise); it cannot see the symbols' values, so rewriting them in place, or
 * any other call planning into that workspace, needs a new plan. On CUDA the planner (one CTA,
 * ~6 us on the H100, which the GEMM waits for) then runs once per plan instead of per call; the
 * CPU backend has no list: its plan only records the operation. */
typedef struct fo_gemm_plan {
  uint64_t opaque[16];
} fo_gemm_plan;

typedef struct fo_gemm_q_args {
  int32_t struct_size; /* = sizeof(fo_gemm_q_args) */
  int32_t heads;
  int32_t head_dim;
  int32_t row_offset;
  fo_tensor x, weight, bias, out;
  const fo_symbols* symbols; /* NULL = dense */
  const fo_gemm_plan* plan;  /* ABI 4. NULL: plan and run; else run a flashomni_gemm_q_plan's */
} fo_gemm_q_args;

/* gemm_o_update / gemm_o_dispatch (spec §4):
 *   cache = bias + sum_{cached heads} a_h weight_h^T;   out = cache + sum_{active heads} ... +
 * extra a [M, heads * head_dim + extra] or [B, M, ...]; weight [N, heads * head_dim + extra]; bias
 * [N] optional (update only); cache [M, N] or [B, M, N] fp32 or the storage dtype; out like cache,
 * storage dtype. update writes cache and out in one pass; dispatch reads cache.
 * Cache-only update: flashomni_gemm_o_update with out.data == NULL computes and writes cache alone
 * (out is neither computed nor written; the active heads' and extra columns of a are not read).
 * dispatch requires out. */
typedef struct fo_gemm_o_args {
  int32_t struct_size; /* = sizeof(fo_gemm_o_args) */
  int32_t heads;
  int32_t head_dim;
  int32_t row_offset;
  fo_tensor a, weight, bias, cache, out;
  const fo_symbols* symbols; /* NULL = every head active */
  const fo_gemm_plan* plan;  /* ABI 4. NULL: plan and run; else the same operation's plan */
} fo_gemm_o_args;

/* ---- Library ---- */
FLASHOMNI_API const char* flashomni_version(void);    /* "0.1.0" */
FLASHOMNI_API int flashomni_abi_version(void);        /* FLASHOMNI_ABI_VERSION it was built with */
FLASHOMNI_API int flashomni_has_cuda(void);           /* 1: built with CUDA and an sm_90 device */
FLASHOMNI_API const char* flashomni_last_error(void); /* "" when no call failed on this thread */

/* ---- Operations (workspace_size depends only on shapes; CPU needs 0 bytes) ---- */
FLASHOMNI_API int flashomni_sparse_attention_workspace_size(const fo_attention_args* args,
                                                            size_t* bytes);
FLASHOMNI_API int flashomni_sparse_attention(const fo_attention_args* args, void* workspace,
                                             size_t workspace_bytes, void* stream);

FLASHOMNI_API int flashomni_gemm_q_workspace_size(const fo_gemm_q_args* args, size_t* bytes);
FLASHOMNI_API int flashomni_gemm_q(const fo_gemm_q_args* args, void* workspace,
                                   size_t workspace_bytes, void* stream);

FLASHOMNI_API int flashomni_gemm_o_workspace_size(const fo_gemm_o_args* args, size_t* bytes);
FLASHOMNI_API int flashomni_gemm_o_update(const fo_gemm_o_args* args, void* workspace,
                                          size_t workspace_bytes, void* stream);
FLASHOMNI_API int flashomni_gemm_o_dispatch(const fo_gemm_o_args* args, void* workspace,
                                            size_t workspace_bytes, void* stream);
/* Enqueue the planner alone (nothing on CPU and for dense calls) and fill *plan; same arguments
 * and workspace as the call that will run the plan. */
FLASHOMNI_API int flashomni_gemm_q_plan(const fo_gemm_q_args* args, void* workspace,
                                        size_t workspace_bytes, void* stream, fo_gemm_plan* plan);
FLASHOMNI_API int flashomni_gemm_o_update_plan(const fo_gemm_o_args* args, void* workspace,
                                               size_t workspace_bytes, void* stream,
                                               fo_gemm_plan* plan);
FLASHOMNI_API int flashomni_gemm_o_dispatch_plan(const fo_gemm_o_args* args, void* workspace,
                                                 size_t workspace_bytes, void* stream,
                                                 fo_gemm_plan* plan);

/* ---- Symbols ---- */
/* Shape the symbols must have for these sequences (q_blocks / kv_blocks from the longest request);
 * fills every field of *shape except the pointers (set to NULL) and device (FO_CPU). */
FLASHOMNI_API int flashomni_symbols_shape_for(const fo_seqlens* seqlens, int32_t heads,
                                              int32_t block_q, int32_t block_kv, fo_symbols* shape);
/* Checks shape, block sizes and pointers; for host symbols also that every bit beyond a request's
 * own block count is 0. Device symbols are checked without reading their words (no host sync). */
FLASHOMNI_API int flashomni_symbols_validate(const fo_symbols* symbols, const fo_seqlens* seqlens,
                                             int32_t heads);
/* Dense symbols for these sequences (every in-range bit 1, every padding bit 0) written to
 * caller-allocated host words: q_words >= batch*heads*ceil(q_blocks/32), kv_words >=
 * batch*heads*q_blocks*ceil(kv_blocks/32) with the shape from flashomni_symbols_shape_for. */
FLASHOMNI_API int flashomni_symbols_dense(const fo_seqlens* seqlens, int32_t heads, int32_t block_q,
                                          int32_t block_kv, uint32_t* q_bits, size_t q_words,
                                          uint32_t* kv_bits, size_t kv_words);

/* ---- Symbol converters (host only; docs/symbols.md and symbols_convert.h have the formats) ----
 * Outputs of the "from" direction are caller-allocated packed words sized from
 * flashomni_symbols_shape_for(seqlens, heads, block_q, block_kv); every result passes
 * flashomni_symbols_validate. Mask and list tensors are host fo_tensors (any strides). */

/* q_mask uint8 [B, H, q_blocks] (1 = compute), kv_mask uint8 [B, H, q_blocks, kv_blocks]. */
FLASHOMNI_API int flashomni_symbols_from_masks(const fo_tensor* q_mask, const fo_tensor* kv_mask,
                                               const fo_seqlens* seqlens, int32_t block_q,
                                               int32_t block_kv, uint32_t* q_bits, size_t q_words,
                                               uint32_t* kv_bits, size_t kv_words);
FLASHOMNI_API int flashomni_symbols_to_masks(const fo_symbols* symbols, const fo_seqlens* seqlens,
                                             const fo_tensor* q_mask, const fo_tensor* kv_mask);

/* FlexAttention-style: kv_num_blocks int32 [B, H, q_blocks], kv_indices int32
 * [B, H, q_blocks, max_kv]; q_mask uint8 [B, H, q_blocks] optional (NULL or data NULL: every
 * in-range query block active when reading, not written when writing). */
FLASHOMNI_API int flashomni_symbols_from_block_lists(
    const fo_tensor* kv_num_blocks, const fo_tensor* kv_indices, const fo_tensor* q_mask,
    const fo_seqlens* seqlens, int32_t block_q, int32_t block_kv, uint32_t* q_bits, size_t q_words,
    uint32_t* kv_bits, size_t kv_words);
FLASHOMNI_API int flashomni_symbols_to_block_lists(const fo_symbols* symbols,
                                                   const fo_seqlens* seqlens,
                                                   const fo_tensor* kv_num_blocks,
                                                   const fo_tensor* kv_indices,
                                                   const fo_tensor* q_mask);

/* The public reference's byte format: per request, Sq flags [nQ_r, H] and Skv flags
 * [nQ_r, H, nK_r], 8 per byte LSB first, segments byte-aligned; indptr int32 [B + 1] byte offsets.
 * reference_packed_size gives the bytes both packed arrays need (= q_indptr[B], kv_indptr[B]). */
FLASHOMNI_API int flashomni_symbols_reference_packed_size(const fo_seqlens* seqlens, int32_t heads,
                                                          int32_t block_q, int32_t block_kv,
                                                          size_t* q_bytes, size_t* kv_bytes);
FLASHOMNI_API int flashomni_symbols_to_reference_packed(const fo_symbols* symbols,
                                                        const fo_seqlens* seqlens,
                                                        uint8_t* q_packed, size_t q_bytes,
                                                        int32_t* q_indptr, uint8_t* kv_packed,
                                                        size_t kv_bytes, int32_t* kv_indptr);
/* q_packed / kv_packed uint8 [bytes], q_indptr / kv_indptr int32 [B + 1], contiguous host. */
FLASHOMNI_API int flashomni_symbols_from_reference_packed(
    const fo_tensor* q_packed, const fo_tensor* q_indptr, const fo_tensor* kv_packed,
    const fo_tensor* kv_indptr, const fo_seqlens* seqlens, int32_t heads, int32_t block_q,
    int32_t block_kv, uint32_t* q_bits, size_t q_words, uint32_t* kv_bits, size_t kv_words);

/* ---- Density statistics (host symbols; symbols_stats.h defines every field) ---- */
/* One (b, h). Frozen layout (ABI version 1). */
typedef struct fo_symbol_density {
  int32_t b, h;
  int32_t valid_q_blocks, valid_kv_blocks, active_q_blocks;
  int64_t kept_pairs, active_q_tokens, kept_token_pairs, q_tokens, kv_tokens;
  double query_density;       /* active_q_blocks / valid_q_blocks */
  double query_token_density; /* active query tokens / tokens: GEMM-Q FLOP fraction */
  double kv_density;          /* kept pairs / (active_q_blocks * valid_kv_blocks) */
  double pair_density;        /* kept pairs / (valid_q_blocks * valid_kv_blocks) */
  double token_pair_density;  /* kept token pairs / (q_tokens * kv_tokens): attention FLOPs */
} fo_symbol_density;

typedef struct fo_density_stat {
  double mean, min, max, overall; /* overall: ratio of the summed counts over the layer */
  int64_t count;                  /* (b, h) entries mean/min/max are over */
} fo_density_stat;

typedef struct fo_density_summary {
  fo_density_stat query, query_token, kv, pair, token_pair;
} fo_density_summary;

/* Writes batch * heads entries ordered (b, h); count is the capacity of `densities`. */
FLASHOMNI_API int flashomni_symbols_densities(const fo_symbols* symbols, const fo_seqlens* seqlens,
                                              fo_symbol_density* densities, size_t count);
FLASHOMNI_API int flashomni_symbols_density_summary(const fo_symbols* symbols,
                                                    const fo_seqlens* seqlens,
                                                    fo_density_summary* summary);

/* ---- Policy and forecast (spec §5; policy.h / forecast.h have the exact semantics) ----
 * run_policy chooses the symbols of one layer at an update step from its Q and K: block means,
 * pooled logits P = mean_q . mean_k * scale, per-row key skipping (softmax of P over key blocks,
 * the smallest prefix with mass <= tau_kv * phi(step) skipped) and per-head query caching (text <->
 * image scores, or the output change with query_score, the smallest prefix with mass <= tau_q *
 * phi(step) cached), phi(s) = (s / S)^2.
 * Dispatches on q's device: FO_CPU runs the fp64 oracle; FO_CUDA writes DEVICE words on `stream`
 * with a workspace of flashomni_policy_workspace_size bytes (no sync, no allocation).
 *
 *   fo_policy_args a;
 *   a.struct_size = sizeof(a);
 *   flashomni_policy_default_args(&a);      // tau_q 0.5, tau_kv 0.15, S = 50, blocks 128, ...
 *   a.q = ...; a.k = ...; a.step = 20;      // [B, N, H, d], [B, N, Hkv, d]
 *   int32_t text[2] = {0, 512};             // FLUX: 512 text tokens first
 *   a.text = fo_tensor_contiguous(text, FO_INT32, FO_CPU, 2, (int64_t[]){1, 2});
 *   fo_symbols shape;
 *   flashomni_policy_symbols_shape(&a, &shape);   // size q_bits / kv_bits from shape
 *   a.q_bits = q_bits; a.q_words = ...; a.kv_bits = kv_bits; a.kv_words = ...;
 *   flashomni_run_policy(&a, NULL, 0, NULL); */
/* Query-caching score of run_policy (same values as flashomni::QueryScore; never renumbered):
 * text<->image pooled attention mass, or ||O_now - O_prev|| / (||O_prev|| + 1e-12) per block. */
typedef enum fo_query_score {
  FO_QUERY_SCORE_TEXT_IMAGE = 0,
  FO_QUERY_SCORE_OUTPUT_CHANGE = 1,
} fo_query_score;

typedef struct fo_policy_args {
  int32_t struct_size;  /* = sizeof(fo_policy_args) */
  int32_t step;         /* 0-based index of the update step, in [0, num_steps) */
  int32_t num_steps;    /* S in phi(s) = (s / S)^2: the sampler's step count */
  int32_t block_q;      /* tokens per query block; 0 = 128 */
  int32_t block_kv;     /* tokens per key block; 0 = 128 */
  int32_t max_seqlen_q; /* varlen: the longest request (0 on the CPU: derived) */
  int32_t max_seqlen_kv;
  int32_t kv_top_k;    /* > 0: keep the k most probable key blocks per row instead of tau_kv */
  double tau_q;        /* fraction of the query score's mass that may be cached */
  double tau_kv;       /* fraction of each row's softmax mass that may be skipped */
  float softmax_scale; /* 0 = 1 / sqrt(d) */
  /* 0 / 1 switches (PolicyConfig in policy.h): */
  int32_t cache_queries;    /* 0: every query block active */
  int32_t skip_kv;          /* 0: every key block kept */
  int32_t keep_diagonal;    /* keep the key blocks overlapping the query block's tokens */
  int32_t keep_text_kv;     /* keep the key blocks holding text tokens */
  int32_t skip_kv_for_text; /* 0: text query blocks keep every key */
  int32_t weight_by_tokens; /* 1: a partial key block weighs by its token count */
  /* q [B, Nq, H, d] / k [B, Nkv, Hkv, d], or varlen [total, H, d] with cu_seqlens_q/kv int32
   * [B + 1] (CPU: host; CUDA: device) and max_seqlen_q/kv. fp32 / fp64 / fp16 / bf16. */
  fo_tensor q, k;
  fo_tensor cu_seqlens_q, cu_seqlens_kv;
  /* int32 [R, 2]: [begin, end) text tokens of every request (R = 1) or each (R = B); data NULL =
   * no text. CPU: host. CUDA: host (R <= 64, travels in the launch) or device. */
  fo_tensor text;
  /* Outputs on q's device, shape from flashomni_policy_symbols_shape; capacities in words. */
  uint32_t* q_bits;
  size_t q_words;
  uint32_t* kv_bits;
  size_t kv_words;
  /* Optional (NULL = not written): batch * heads entries ordered (b, h), on q's device. */
  fo_symbol_density* densities;
  size_t densities_count;
  /* ABI 3 (absent in an ABI-2 struct = FO_QUERY_SCORE_TEXT_IMAGE). What ranks the query blocks
   * for caching (QueryScore in policy.h). With FO_QUERY_SCORE_OUTPUT_CHANGE: out_now / out_prev,
   * this and the previous update's attention outputs in q's layout with any dv, on q's device,
   * fp32 / fp64 / fp16 / bf16 each; out_now is required, out_prev data NULL means no previous
   * update (the first one) and caches nothing. */
  int32_t query_score; /* fo_query_score */
  fo_tensor out_now, out_prev;
} fo_policy_args;

/* Fills every field of *args (within args->struct_size, which the caller sets first) with the
 * defaults of PolicyConfig: step 0, num_steps 50, blocks 128, tau_q 0.5, tau_kv 0.15,
 * cache_queries / skip_kv / weight_by_tokens 1, the rest 0; tensors and outputs not given. */
FLASHOMNI_API int flashomni_policy_default_args(fo_policy_args* args);
/* Shape of the symbols run_policy writes (pointers NULL, device = q's device). */
FLASHOMNI_API int flashomni_policy_symbols_shape(const fo_policy_args* args, fo_symbols* shape);
FLASHOMNI_API int flashomni_policy_workspace_size(const fo_policy_args* args, size_t* bytes);
FLASHOMNI_API int flashomni_run_policy(const fo_policy_args* args, void* workspace,
                                       size_t workspace_bytes, void* stream);

/* Taylor forecast of a cached value (TaylorForecast in engine.h): the polynomial of degree
 * min(order, points - 1) through the last points' values, evaluated at target_step, as
 * out = sum_p w_p history_p elementwise (Lagrange weights from the steps, computed on the host).
 * history / out: one element count; CPU: fp32 / fp64 / fp16 / bf16, any strides; CUDA: fp32 /
 * fp16 / bf16, contiguous, asynchronous on `stream`. Dispatches on out's device. */
#define FO_MAX_FORECAST_POINTS 3
typedef struct fo_forecast_args {
  int32_t struct_size; /* = sizeof(fo_forecast_args) */
  int32_t order;       /* 0, 1 or 2 */
  int32_t target_step;
  int32_t points;                        /* history values given, 1..3, oldest first */
  int32_t steps[FO_MAX_FORECAST_POINTS]; /* their steps, strictly increasing */
  fo_tensor history[FO_MAX_FORECAST_POINTS];
  fo_tensor out;
} fo_forecast_args;
FLASHOMNI_API int flashomni_forecast(const fo_forecast_args* args, void* stream);

#ifdef __cplusplus
} /* extern "C" */
#endif

/* Convenience (header-only): a contiguous fo_tensor of `ndim` dims. */
static inline fo_tensor fo_tensor_contiguous(void* data, int32_t dtype, int32_t device,
                                             int32_t ndim, const int64_t* shape) {
  fo_tensor t;
  int64_t stride = 1;
  int i;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.ndim = ndim;
  for (i = 0; i < FO_MAX_DIMS; ++i) {
    t.shape[i] = 0;
    t.strides[i] = 0;
  }
  /* ndim > FO_MAX_DIMS is kept so that the library rejects it with a message. */
  for (i = (ndim < FO_MAX_DIMS ? ndim : FO_MAX_DIMS) - 1; i >= 0; --i) {
    t.shape[i] = shape[i];
    t.strides[i] = stride;
    stride *= shape[i];
  }
  return t;
}

#endif /* FLASHOMNI_FLASHOMNI_H_ */
