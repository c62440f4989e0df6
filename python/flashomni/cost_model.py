"""The dense-fallback cost model of flashomni.engine: a layer's dispatch step against its dense
step, from the shapes and the chosen symbols' densities (EngineConfig.dense_fallback)."""

# Efficiencies of the sparse path measured on the H100 (bench/results, bf16, d = 128): sparse
# attention reaches ~0.9 of density x cuDNN dense time at 16K-33K tokens (attention_README.md);
# gemm_q ~0.8 of density x cuBLAS dense; gemm_o_dispatch at K = 3072 ~0.6 (with an fp32 cache;
# a 16-bit one, TMA-staged during the mainloop, reaches 0.58-0.80 of ideal at density 0.25-0.5
# and M >= 16896, but at FLUX's 4608 rows a model with 0.7 for it sent more layers to the sparse
# path and the generation got slower: 0.961x vs 0.976x, e2e_README.md session 4, so both use
# 0.6). cuDNN attention and cuBLAS run at about the same FLOP rate (601-687 and 585-715
# TFLOP/s), and the fused forecast streams (points + 1) [N, D] cache arrays (4 or 2 bytes an
# element) at ~2.9 TB/s (policy_check, forecast_ab_h100_5aeb571.log) where a projection runs
# ~700 TFLOP/s.
_ATTENTION_EFF, _GEMM_Q_EFF, _GEMM_O_EFF = 0.9, 0.8, 0.6
_FORECAST_BYTES_PER_FLOP = 7e14 / 2.9e12


def dispatch_cost_ratio(*, tokens, heads, head_dim, query_density, pair_density,
                        forecast_points, dense_q, cache_bytes=4):
    """Estimated time of a layer's dispatch step over its dense step, counting only what
    differs (attention, the Q and output projections, the forecast), in units of one dense
    projection P = 2 N D^2 FLOPs (D = heads * head_dim): attention is 4 N^2 d H = (2 N / D) P.
    cache_bytes: 4 (float32 cache) or 2 (the storage dtype)."""
    d_model = heads * head_dim
    attention = 2.0 * tokens / d_model
    dense = attention + 2.0
    forecast = 0.0
    if forecast_points > 1:  # one point is C itself, no pass
        forecast = ((forecast_points + 1) * cache_bytes * _FORECAST_BYTES_PER_FLOP
                    / (2 * d_model))
    sparse = (attention * pair_density / _ATTENTION_EFF
              + (1.0 if dense_q else query_density / _GEMM_Q_EFF)
              + query_density / _GEMM_O_EFF + forecast)
    return sparse / dense
