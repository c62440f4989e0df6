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
- reads the copies later (read(): at the layer's next begin(), a step later), when the copies
  finished long ago.
"""

import torch

from .symbols import Symbols


class PinnedWords:
    """A layer's pinned host buffers for the symbol words and the reuse flag, and the event
    that says the copies into them finished; kept across the layer's updates (FLUX's 57 layers
    took new ones from torch's pinned caching allocator, an event and an arange at each of their
    ~9 updates per generation)."""

    def __init__(self, q, kv):
        self.q_host = torch.empty(q.shape, dtype=q.dtype, pin_memory=True)
        self.kv_host = torch.empty(kv.shape, dtype=kv.dtype, pin_memory=True)
        self.reuse_host = torch.empty((), dtype=torch.bool, pin_memory=True)
        self.done = torch.cuda.Event()
        self.used = False  # copies into these buffers were enqueued before

    def fits(self, q, kv):
        return (self.q_host.shape == q.shape and self.q_host.dtype == q.dtype and
                self.kv_host.shape == kv.shape and self.kv_host.dtype == kv.dtype)


_SHIFTS = {}  # device -> arange(32), int64: the bit positions of a symbol word


def _shifts(device):
    t = _SHIFTS.get(device)
    if t is None:
        t = _SHIFTS[device] = torch.arange(32, device=device, dtype=torch.int64)
    return t


class PendingDensity:
    """symbols: GPU Symbols without variable lengths (every query block of every batch entry
    counts, as in Symbols.density()). buffers: the layer's PinnedWords from its last update,
    reused when the words' shapes match (else new ones: see .buffers)."""

    def __init__(self, symbols: Symbols, reuse_below: float, buffers=None):
        self.symbols = symbols
        q, kv = symbols.q_bits, symbols.kv_bits
        bits = (q.to(torch.int64).unsqueeze(-1) >> _shifts(q.device)) & 1  # [B, H, words, 32]
        active = bits.flatten(-2)[..., :symbols.q_blocks].sum()
        total = symbols.batch * symbols.heads * symbols.q_blocks
        # float64: the same comparison as the host's overall = active / total < reuse_below
        # up to one rounding of the product.
        self.reuse = active.to(torch.float64) < reuse_below * total
        if buffers is None or not buffers.fits(q, kv):
            buffers = PinnedWords(q, kv)
        elif buffers.used:
            # The last copies may be unread (a generation reset between them) and on another
            # stream: order the new ones after them on the GPU, not with a host wait.
            torch.cuda.current_stream().wait_event(buffers.done)
        self.buffers = buffers
        buffers.q_host.copy_(q, non_blocking=True)
        buffers.kv_host.copy_(kv, non_blocking=True)
        buffers.reuse_host.copy_(self.reuse, non_blocking=True)
        buffers.done.record()
        buffers.used = True

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
        symbols). Waits for the copies (normally finished). The host copy is a clone: the
        buffers are the next update's."""
        b = self.buffers
        b.done.synchronize()
        host = self.symbols._like(b.q_host.clone(), b.kv_host.clone())
        return host.density(), bool(b.reuse_host.item()), host
