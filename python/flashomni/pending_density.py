"""The density read of an update's GPU symbols without a host synchronisation where it is asked
for (flashomni.engine).

Symbols.density() copies the words to the host and waits for them: at an update step the engine
did so once per layer, which drained the GPU queue 57 times per FLUX step while Python queued
the next layer's kernels (FLUX update steps took 229 ms where dense ones took 184 ms, and the
generation's wall time was ~500 ms above its kernel time; 195 ms with this, bench/results/
e2e_README.md session 4). PendingDensity instead

- starts copies of the words into pinned host memory on the current stream (non_blocking),
- decides whole-layer reuse (query density below reuse_below) on the GPU, because the update's
  own output projections need that choice now (their caches are computed under it), and
- reads the copies later (read(): the engine calls it from set_step, once per step for all
  layers, between steps), when the copies finished long ago.
"""

import torch

from .symbols import Symbols


class PendingDensity:
    """symbols: GPU Symbols without variable lengths (every query block of every batch entry
    counts, as in Symbols.density())."""

    def __init__(self, symbols: Symbols, reuse_below: float):
        self.symbols = symbols
        q, kv = symbols.q_bits, symbols.kv_bits
        shifts = torch.arange(32, device=q.device, dtype=torch.int64)
        bits = (q.to(torch.int64).unsqueeze(-1) >> shifts) & 1  # [B, H, words, 32]
        active = bits.flatten(-2)[..., :symbols.q_blocks].sum()
        total = symbols.batch * symbols.heads * symbols.q_blocks
        # float64: the same comparison as the host's overall = active / total < reuse_below
        # up to one rounding of the product.
        self.reuse = active.to(torch.float64) < reuse_below * total
        self.q_host = torch.empty(q.shape, dtype=q.dtype, pin_memory=True)
        self.kv_host = torch.empty(kv.shape, dtype=kv.dtype, pin_memory=True)
        self.reuse_host = torch.empty((), dtype=torch.bool, pin_memory=True)
        self.q_host.copy_(q, non_blocking=True)
        self.kv_host.copy_(kv, non_blocking=True)
        self.reuse_host.copy_(self.reuse, non_blocking=True)
        self.done = torch.cuda.Event()
        self.done.record()

    @staticmethod
    def applies(symbols: Symbols) -> bool:
        return symbols.is_cuda and not symbols.seqlens.varlen

    def gemm_symbols(self, all_cached: Symbols) -> Symbols:
        """The symbols the update's projections use: all_cached's query words where the GPU
        decided reuse, else the chosen ones (key words unchanged: the GEMMs read query words
        only)."""
        q = torch.where(self.reuse, all_cached.q_bits, self.symbols.q_bits)
        return self.symbols._like(q, self.symbols.kv_bits)

    def read(self):
        """(Symbols.density() of the symbols, reuse decided on the GPU, host copy of the
        symbols). Waits for the copies (normally finished)."""
        self.done.synchronize()
        host = self.symbols._like(self.q_host, self.kv_host)
        return host.density(), bool(self.reuse_host.item()), host
