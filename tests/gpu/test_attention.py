"""FlashOmni GPU tests: flashomni.sparse_attention (CUDA kernel) against torch SDPA (math backend,
fp32) with the block symbols expanded to a boolean token mask. Skipped without a CUDA GPU.

Covers random shapes with tails, densities 0..1, cached rows untouched (poisoned output), rows with
every key block skipped (O = 0, LSE = -inf), GQA, varlen, both dtypes, head dims 64 and 128.
"""

import math

import pytest

from cuda_env import require_cuda

torch, flashomni = require_cuda()

import torch.nn.functional as F  # noqa: E402

BLOCK = 128
POISON = 1234.5


def expand_mask(keep, nq, nk):
    """[H, nQ, nK] block mask -> [H, nq, nk] token mask."""
    m = keep.repeat_interleave(BLOCK, dim=1).repeat_interleave(BLOCK, dim=2)
    return m[:, :nq, :nk]


def reference(q, k, v, qmask, keep):
    """One request: q [nq, H, d], k/v [nk, Hkv, d]; returns (out fp32, lse fp32) [nq, H, d], [H, nq]."""
    nq, H, d = q.shape
    nk, Hkv = k.shape[0], k.shape[1]
    g = H // Hkv
    qf = q.float().transpose(0, 1)  # [H, nq, d]
    kf = k.float().repeat_interleave(g, dim=1).transpose(0, 1)
    vf = v.float().repeat_interleave(g, dim=1).transpose(0, 1)
    mask = expand_mask(keep, nq, nk)
    s = (qf @ kf.transpose(1, 2)) / math.sqrt(d)
    s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # -inf where no key is kept
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    out = (p @ vf).transpose(0, 1)
    return out, lse


def random_symbols(batch, heads, nqb, nkb, q_density, kv_density, gen):
    qmask = torch.rand(batch, heads, nqb, generator=gen) < q_density
    keep = torch.rand(batch, heads, nqb, nkb, generator=gen) < kv_density
    return qmask, keep


def check_request(out, lse, q, k, v, qmask, keep, dtype):
    """Compares one request's rows; cached blocks must still hold the poison."""
    qmask, keep = qmask.cuda(), keep.cuda()
    ref_out, ref_lse = reference(q, k, v, qmask, keep)
    nq = q.shape[0]
    rows = qmask.repeat_interleave(BLOCK, dim=1)[:, :nq]  # [H, nq] computed?
    rows_t = rows.transpose(0, 1)  # [nq, H]
    cached = out[~rows_t]
    assert torch.all(cached == POISON), "cached rows were written (out)"
    assert torch.all(lse[~rows] == POISON), "cached rows were written (lse)"
    got, want = out[rows_t].float(), ref_out[rows_t]
    empty = torch.isinf(ref_lse) & rows
    assert torch.all(torch.isneginf(lse[empty])), "empty rows need lse = -inf"
    assert torch.all(out.transpose(0, 1)[empty] == 0), "empty rows need out = 0"
    if got.numel():
        rel = ((got - want).norm() / want.norm().clamp_min(1e-6)).item()
        tol = 1.5e-2 if dtype == torch.bfloat16 else 4e-3
        assert rel < tol, f"relative error {rel:.3e}"
        finite = rows & ~empty
        lse_err = (lse[finite] - ref_lse[finite]).abs().max().item() if finite.any() else 0
        assert lse_err < 2e-2, f"lse error {lse_err:.3e}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("kv_density", [0.0, 0.3, 1.0])
def test_batch_against_sdpa_mask(dtype, d, kv_density):
    gen = torch.Generator().manual_seed(hash((str(dtype), d, kv_density)) % (2**31))
    B, nq, nk, H, Hkv = 2, 700, 555, 4, 2
    q = torch.randn(B, nq, H, d, generator=gen).to("cuda", dtype)
    k = torch.randn(B, nk, Hkv, d, generator=gen).to("cuda", dtype)
    v = torch.randn(B, nk, Hkv, d, generator=gen).to("cuda", dtype)
    nqb, nkb = -(-nq // BLOCK), -(-nk // BLOCK)
    qmask, keep = random_symbols(B, H, nqb, nkb, 0.7, kv_density, gen)
    sym = flashomni.Symbols.from_masks(qmask, keep, seqlen_q=nq, seqlen_kv=nk).to("cuda")
    out = torch.full_like(q, POISON)
    lse = torch.full((B, H, nq), POISON, device="cuda")
    flashomni.sparse_attention(q, k, v, sym, out=out, lse=lse)
    torch.cuda.synchronize()
    for b in range(B):
        check_request(out[b], lse[b], q[b], k[b], v[b], qmask[b], keep[b], dtype)


def test_dense_matches_cudnn_sdpa():
    q = torch.randn(1, 1024, 8, 128, device="cuda", dtype=torch.bfloat16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    out = flashomni.sparse_attention(q, k, v)
    ref = F.scaled_dot_product_attention(*(x.transpose(1, 2) for x in (q, k, v))).transpose(1, 2)
    rel = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    assert rel < 1e-2


def test_varlen_gqa():
    gen = torch.Generator().manual_seed(7)
    lens_q, lens_kv = [300, 1, 517, 128], [200, 129, 0, 640]
    H, Hkv, d, dtype = 6, 2, 128, torch.bfloat16
    cu_q = torch.tensor([0] + list(torch.tensor(lens_q).cumsum(0)), dtype=torch.int32)
    cu_kv = torch.tensor([0] + list(torch.tensor(lens_kv).cumsum(0)), dtype=torch.int32)
    q = torch.randn(int(cu_q[-1]), H, d, generator=gen).to("cuda", dtype)
    k = torch.randn(int(cu_kv[-1]), Hkv, d, generator=gen).to("cuda", dtype)
    v = torch.randn(int(cu_kv[-1]), Hkv, d, generator=gen).to("cuda", dtype)
    nqb, nkb = -(-max(lens_q) // BLOCK), -(-max(lens_kv) // BLOCK)
    qmask, keep = random_symbols(len(lens_q), H, nqb, nkb, 0.8, 0.6, gen)
    for b, (lq, lk) in enumerate(zip(lens_q, lens_kv)):  # out-of-range bits must be 0
        qmask[b, :, -(-lq // BLOCK):] = False
        keep[b, :, -(-lq // BLOCK):, :] = False
        keep[b, :, :, -(-lk // BLOCK):] = False
    sym = flashomni.Symbols.from_masks(qmask, keep, cu_seqlens_q=cu_q,
                                       cu_seqlens_kv=cu_kv).to("cuda")
    out = torch.full_like(q, POISON)
    lse = torch.full((H, q.shape[0]), POISON, device="cuda")
    flashomni.sparse_attention(q, k, v, sym, out=out, lse=lse, cu_seqlens_q=cu_q.cuda(),
                               cu_seqlens_kv=cu_kv.cuda())
    torch.cuda.synchronize()
    for b, (lq, lk) in enumerate(zip(lens_q, lens_kv)):
        qs, ks = int(cu_q[b]), int(cu_kv[b])
        nqb_b, nkb_b = -(-lq // BLOCK), -(-lk // BLOCK)
        check_request(out[qs:qs + lq], lse[:, qs:qs + lq], q[qs:qs + lq], k[ks:ks + lk],
                      v[ks:ks + lk], qmask[b, :, :nqb_b], keep[b, :, :nqb_b, :nkb_b], dtype)


def test_deterministic():
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(1, 2000, 4, 128, generator=gen).to("cuda", torch.bfloat16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    qmask, keep = random_symbols(1, 4, 16, 16, 0.9, 0.5, gen)
    sym = flashomni.Symbols.from_masks(qmask, keep, seqlen_q=2000, seqlen_kv=2000).to("cuda")
    a = flashomni.sparse_attention(q, k, v, sym)
    b = flashomni.sparse_attention(q, k, v, sym)
    assert torch.equal(a, b)
