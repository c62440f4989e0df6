"""FlashOmni quick start: sparse symbols, block-sparse attention and the two sparse projections on
PyTorch tensors, each checked against plain PyTorch.

One attention layer of N tokens: the symbols cache some (query block, head) pairs (their rows are
neither projected nor attended: a diffusion engine reuses them from its last full step) and skip
some (query block, key block, head) pairs. Then

  q = gemm_q(x, W_q, b_q)               only the active (block, head) tiles of x W_q^T + b_q
  o = sparse_attention(q, k, v)         softmax over the kept key blocks, active rows only
  y, C = gemm_o_update(o, W_o, b_o)     full step: C = b_o + cached heads' share, y = C + the rest
  y' = gemm_o_dispatch(o', W_o, C)      sparse step: C + the active heads of a new o'
  plan = gemm_o_dispatch_plan(...)      the sparse steps' work list, planned once (plan=)

Run (CUDA bf16 when a Hopper GPU and a CUDA build of libflashomni are there, else the CPU backend
in float32):
    PYTHONPATH=python FLASHOMNI_LIBRARY=build/libflashomni.so python3 examples/quickstart.py
Exits 1 if a check fails.
"""

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F

import flashomni as fo


def token_mask(sym, n):
    """[B, H, N, N] bool: key token j is kept for query token i (from the symbols' block masks)."""
    q_mask, kv_mask = sym.to_masks()
    kv = torch.from_numpy(np.asarray(kv_mask, dtype=bool))
    per_token = kv.repeat_interleave(sym.block_q, dim=2).repeat_interleave(sym.block_kv, dim=3)
    return per_token[:, :, :n, :n], torch.from_numpy(np.asarray(q_mask, dtype=bool))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--tokens", type=int, default=600, help="N (any: the last block is a tail)")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=64, help="64, 128 or 256 on CUDA")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and fo.has_cuda()
    device = {"auto": "cuda" if cuda else "cpu", "cpu": "cpu", "cuda": "cuda"}[args.device]
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    n, heads, d = args.tokens, args.heads, args.head_dim
    hidden = heads * d
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    # Symbols: block masks -> compact bit words (docs/symbols.md). 128-token blocks by default.
    blocks = (n + 127) // 128
    q_mask = rng.random((1, heads, blocks)) < 0.6  # True: computed now; False: cached
    kv_mask = rng.random((1, heads, blocks, blocks)) < 0.7  # True: key block kept
    kv_mask[..., 0] = True  # every row keeps at least one key block
    sym = fo.Symbols.from_masks(q_mask, kv_mask, seqlen_q=n, seqlen_kv=n).to(device)
    dens = sym.density()
    print(f"{device} ({dtype}): N = {n}, {heads} heads x {d}; query density "
          f"{dens['query']['overall']:.2f}, token-pair density {dens['token_pair']['overall']:.2f}")

    def rand(*shape):
        return torch.randn(*shape, device=device).to(dtype)

    x = rand(1, n, hidden)
    w_q, b_q = rand(hidden, hidden) / hidden ** 0.5, rand(hidden)
    w_o, b_o = rand(hidden, hidden) / hidden ** 0.5, rand(hidden)
    k, v = rand(1, n, heads, d), rand(1, n, heads, d)
    keep, q_active = token_mask(sym.cpu(), n)
    rows = q_active.repeat_interleave(sym.block_q, dim=2)[:, :, :n]  # [B, H, N]: computed now
    rows_bnh = rows.permute(0, 2, 1).unsqueeze(-1).to(device)  # [B, N, H, 1]
    tol = 3e-2 if dtype == torch.bfloat16 else 1e-4
    failures = []

    def check(name, got, want, where=None):
        got, want = got.float(), want.float()
        if where is not None:
            got, want = got * where, want * where
        err = ((got - want).norm() / want.norm().clamp_min(1e-30)).item()
        ok = err <= tol
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: relative L2 error {err:.2e}")
        if not ok:
            failures.append(name)

    # 1. Q projection of the active (block, head) tiles only; cached rows stay 0.
    q = fo.gemm_q(x, w_q, b_q, heads=heads, symbols=sym).view(1, n, heads, d)
    check("gemm_q, active tiles", q, F.linear(x.float(), w_q.float(), b_q.float()).view(
        1, n, heads, d), rows_bnh)
    if (q.float() * ~rows_bnh).abs().max().item() != 0:
        failures.append("gemm_q wrote a cached tile")

    # 2. Block-sparse attention against SDPA with the same token mask (active rows only).
    o = fo.sparse_attention(q, k, v, sym)
    ref = F.scaled_dot_product_attention(
        q.float().transpose(1, 2), k.float().transpose(1, 2), v.float().transpose(1, 2),
        attn_mask=keep.to(device)).transpose(1, 2)
    check("sparse_attention, active rows", o, ref, rows_bnh)

    # 3. Output projection: a full step writes the cache C, a sparse step reuses it.
    o_full = rand(1, n, hidden)  # a full step's attention output (every row)
    y, cache = fo.gemm_o_update(o_full, w_o, b_o, heads=heads, symbols=sym)
    check("gemm_o_update == linear", y, F.linear(o_full.float(), w_o.float(), b_o.float()))
    o_new = o.reshape(1, n, hidden)  # a later step: fresh values in the active tiles only
    y2 = fo.gemm_o_dispatch(o_new, w_o, cache, heads=heads, symbols=sym)
    mixed = torch.where(rows_bnh, o_new.view(1, n, heads, d), o_full.view(1, n, heads, d))
    check("gemm_o_dispatch == linear of (fresh active | cached) heads", y2,
          F.linear(mixed.reshape(1, n, hidden).float(), w_o.float(), b_o.float()))
    # The sparse steps between two full steps share the symbols: plan the dispatch's work list
    # once, then each step runs the GEMM alone (on CUDA the planner kernel is skipped).
    plan = fo.gemm_o_dispatch_plan(o_new, w_o, cache, heads=heads, symbols=sym)
    y3 = fo.gemm_o_dispatch(o_new, w_o, cache, heads=heads, symbols=sym, plan=plan)
    if not torch.equal(y3, y2):
        failures.append("gemm_o_dispatch on a plan differs from the planning call")
    if failures:
        print(f"FAILED: {', '.join(failures)}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
