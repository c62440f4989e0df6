// FlashOmni GPU check programs: the policy cases of tests/gpu/policy_check.cpp (data only), kept
// apart so the checker stays readable. Each case is one run_policy problem compared CPU vs GPU.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "flashomni/policy.h"

namespace flashomni::gpu_check {

struct PolicyCase {
  std::string name;
  flashomni::DType dtype = flashomni::DType::kBFloat16;
  int32_t heads = 4, kv_heads = 4, head_dim = 64;
  std::vector<int32_t> lens_q{1000}, lens_kv{1000};
  bool varlen = false;
  int32_t block_q = 128, block_kv = 128;
  std::vector<flashomni::TextRange> text;
  bool device_text = false;
  int32_t step = 30;
  flashomni::PolicyConfig config;
  int32_t pad = 0;
  // config.query_score == kOutputChange: the two outputs' dtypes, dv (0 = head_dim), and whether
  // a previous output exists (false: the first update).
  flashomni::DType now_dtype = flashomni::DType::kBFloat16,
                   prev_dtype = flashomni::DType::kBFloat16;
  int32_t out_dim = 0;
  bool has_prev = true;
};

// One full-size problem (B = 1, H = 24, d = 128): the timing and the FLUX / HunyuanVideo cases.
inline PolicyCase bench_case(int32_t n, int32_t text, bool text_first) {
  PolicyCase c;
  c.name = "N=" + std::to_string(n);
  c.heads = c.kv_heads = 24;
  c.head_dim = 128;
  c.lens_q = c.lens_kv = {n};
  c.text = {text_first ? flashomni::text_first(text) : flashomni::text_last(n, text)};
  c.step = 20;
  return c;
}

inline std::vector<PolicyCase> policy_cases() {
  std::vector<PolicyCase> out;
  auto add = [&out](PolicyCase c) { out.push_back(std::move(c)); };
  PolicyCase base;
  base.name = "uniform B=2 text first, partial block";
  base.lens_q = base.lens_kv = {1000, 1000};
  base.text = {flashomni::text_first(200)};
  add(base);
  PolicyCase gqa = base;
  gqa.name = "GQA 8/2 text last";
  gqa.heads = 8, gqa.kv_heads = 2;
  gqa.text = {flashomni::text_last(1000, 150)};
  gqa.step = 45;
  add(gqa);
  PolicyCase vl;
  vl.name = "varlen per-request text (host)";
  vl.varlen = true;
  vl.lens_q = vl.lens_kv = {700, 1300, 129};
  vl.text = {{0, 100}, {1100, 1300}, {5, 60}};
  vl.step = 40;
  add(vl);
  PolicyCase vd = vl;
  vd.name = "varlen per-request text (device)";
  vd.device_text = true;
  add(vd);
  PolicyCase v1 = vl;
  v1.name = "varlen one text range on the device, GQA";
  v1.text = {{0, 64}};
  v1.device_text = true;
  v1.heads = 6, v1.kv_heads = 3;
  add(v1);
  PolicyCase nt = base;
  nt.name = "no text";
  nt.text = {};
  add(nt);
  PolicyCase b1 = base;
  b1.name = "block_q 64, block_kv 128";
  b1.block_q = 64;
  add(b1);
  PolicyCase b2 = base;
  b2.name = "block_q 128, block_kv 64";
  b2.block_kv = 64;
  b2.text = {{130, 290}};
  add(b2);
  PolicyCase tk = base;
  tk.name = "kv_top_k 3";
  tk.config.kv_top_k = 3;
  add(tk);
  PolicyCase kr = base;
  kr.name = "keep_diagonal + keep_text_kv + skip_kv_for_text";
  kr.config.keep_diagonal = kr.config.keep_text_kv = kr.config.skip_kv_for_text = true;
  kr.text = {{300, 420}};
  kr.step = 49;
  add(kr);
  PolicyCase uw = base;
  uw.name = "weight_by_tokens off, tau 0.9 / 0.5";
  uw.config.weight_by_tokens = false;
  uw.config.tau_q = 0.9, uw.config.tau_kv = 0.5;
  add(uw);
  PolicyCase cr = base;
  cr.name = "cross attention (cache_queries off, Nkv != Nq)";
  cr.lens_kv = {777, 777};
  cr.config.cache_queries = false;
  add(cr);
  PolicyCase ns = base;
  ns.name = "skip_kv off";
  ns.config.skip_kv = false;
  add(ns);
  PolicyCase s0 = base;
  s0.name = "step 0 (threshold 0)";
  s0.step = 0;
  add(s0);
  for (flashomni::DType t :
       {flashomni::DType::kFloat16, flashomni::DType::kFloat32, flashomni::DType::kFloat64}) {
    PolicyCase dt = gqa;
    dt.name = std::string("dtype ") + flashomni::dtype_name(t);
    dt.dtype = t;
    add(dt);
  }
  PolicyCase st = gqa;
  st.name = "strided rows (scalar loads), d = 40";
  st.pad = 3;
  st.head_dim = 40;
  add(st);
  // QueryScore::kOutputChange: ranking by the relative output change (issue 5).
  PolicyCase oc = base;
  oc.name = "output change, text first, tau_q 0.9";
  oc.config.query_score = flashomni::QueryScore::kOutputChange;
  oc.config.tau_q = 0.9;
  add(oc);
  PolicyCase o0 = oc;
  o0.name = "output change, step 0 (only unchanged blocks cached)";
  o0.step = 0;
  add(o0);
  PolicyCase of = oc;
  of.name = "output change, first update (no out_prev)";
  of.has_prev = false;
  add(of);
  PolicyCase ov = vd;
  ov.name = "output change, varlen device text, fp32 now / bf16 prev, dv 40 strided";
  ov.config.query_score = flashomni::QueryScore::kOutputChange;
  ov.now_dtype = flashomni::DType::kFloat32;
  ov.out_dim = 40;
  ov.pad = 3;
  add(ov);
  PolicyCase on = gqa;
  on.name = "output change, no text, GQA, fp16 / fp64";
  on.config.query_score = flashomni::QueryScore::kOutputChange;
  on.text = {};
  on.dtype = on.now_dtype = flashomni::DType::kFloat16;
  on.prev_dtype = flashomni::DType::kFloat64;
  add(on);
  PolicyCase flux = bench_case(16896, 512, true);
  flux.name = "FLUX-like N=16896 H=24 d=128, 512 text first";
  add(flux);
  PolicyCase hy = bench_case(33792, 256, false);
  hy.name = "HunyuanVideo-like N=33792 H=24 d=128, 256 text last";
  hy.step = 45;
  add(hy);
  PolicyCase ocf = flux;
  ocf.name = "output change FLUX-like N=16896 H=24 dv=128";
  ocf.config.query_score = flashomni::QueryScore::kOutputChange;
  add(ocf);
  return out;
}

}  // namespace flashomni::gpu_check
