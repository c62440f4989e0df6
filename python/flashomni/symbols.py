"""FlashOmni Python layer: the sparse symbols (packed Sq / Skv words), their converters and stats.

Layout (same as symbols.h): q_bits uint32 [batch, heads, ceil(q_blocks / 32)] and kv_bits uint32
[batch, heads, q_blocks, ceil(kv_blocks / 32)]; block i of a row is bit i % 32 of word i / 32;
1 = compute / keep, 0 = cached / skipped. The words live in NumPy arrays on the host or in torch
tensors (int32 or uint32, same bits) on a GPU (Symbols.to("cuda")).

Example:
    s = Symbols.from_masks(q_mask, kv_mask)        # bool [B, H, nQ], [B, H, nQ, nK]
    s.validate(seqlen_q=4096, seqlen_kv=4096)
    print(s.density()["token_pair"]["overall"])    # attention FLOP fraction kept
"""

import ctypes

import numpy as np

from . import _arrays, _lib

DEFAULT_BLOCK = 128


class SeqLens:
    """Host description of the sequences symbols are used with (uniform batch or varlen)."""

    def __init__(self, batch=1, seqlen_q=None, seqlen_kv=None, cu_seqlens_q=None,
                 cu_seqlens_kv=None):
        if (cu_seqlens_q is None) != (cu_seqlens_kv is None):
            raise ValueError(
                "argument 'cu_seqlens_kv': cu_seqlens_q and cu_seqlens_kv must be given together"
            )
        if cu_seqlens_q is not None:
            self.cu_q = np.ascontiguousarray(_arrays.to_numpy_host(cu_seqlens_q), dtype=np.int32)
            self.cu_kv = np.ascontiguousarray(_arrays.to_numpy_host(cu_seqlens_kv), dtype=np.int32)
            if self.cu_q.ndim != 1 or self.cu_q.size < 1:
                raise ValueError(
                    "argument 'cu_seqlens_q': expected a 1-D array of batch + 1 offsets")
            if self.cu_kv.shape != self.cu_q.shape:
                raise ValueError(
                    f"argument 'cu_seqlens_kv': expected shape {self.cu_q.shape} like "
                    f"cu_seqlens_q, got {self.cu_kv.shape}"
                )
            self.batch = self.cu_q.size - 1
            self.seqlen_q = int(np.max(np.diff(self.cu_q), initial=0))
            self.seqlen_kv = int(np.max(np.diff(self.cu_kv), initial=0))
        else:
            if seqlen_q is None or seqlen_kv is None:
                raise ValueError("argument 'seqlen_q': seqlen_q and seqlen_kv (or cu_seqlens_*) "
                                 "are required")
            self.cu_q = self.cu_kv = None
            self.batch, self.seqlen_q, self.seqlen_kv = int(batch), int(seqlen_q), int(seqlen_kv)

    @property
    def varlen(self):
        return self.cu_q is not None

    def c(self):
        s = _lib.SeqLensStruct()
        s.batch, s.seqlen_q, s.seqlen_kv = self.batch, self.seqlen_q, self.seqlen_kv
        if self.varlen:
            s.cu_seqlens_q = self.cu_q.ctypes.data
            s.cu_seqlens_kv = self.cu_kv.ctypes.data
        return s

    def __repr__(self):
        if self.varlen:
            return (f"SeqLens(cu_seqlens_q={self.cu_q.tolist()}, "
                    f"cu_seqlens_kv={self.cu_kv.tolist()})")
        return f"SeqLens(batch={self.batch}, seqlen_q={self.seqlen_q}, seqlen_kv={self.seqlen_kv})"


def _seqlens_or(default, batch, seqlen_q, seqlen_kv, cu_seqlens_q, cu_seqlens_kv):
    if cu_seqlens_q is None and cu_seqlens_kv is None and seqlen_q is None and seqlen_kv is None:
        return default
    if cu_seqlens_q is None and cu_seqlens_kv is None:
        seqlen_q = default.seqlen_q if seqlen_q is None else seqlen_q
        seqlen_kv = default.seqlen_kv if seqlen_kv is None else seqlen_kv
    return SeqLens(batch, seqlen_q, seqlen_kv, cu_seqlens_q, cu_seqlens_kv)


def shape_for(seqlens, heads, block_q=DEFAULT_BLOCK, block_kv=DEFAULT_BLOCK):
    """(batch, heads, q_blocks, kv_blocks) the symbols must have for these sequences."""
    out = _lib.SymbolsStruct()
    sl = seqlens.c()
    _lib.call("flashomni_symbols_shape_for", ctypes.byref(sl), int(heads), int(block_q),
              int(block_kv), ctypes.byref(out))
    return out.batch, out.heads, out.q_blocks, out.kv_blocks


def _stat_dict(stat):
    return {f: getattr(stat, f) for f, _ in _lib.DensityStat._fields_}


class Symbols:
    """Packed sparse symbols plus the sequences they describe.

    Symbols(q_bits, kv_bits, heads=..., q_blocks=..., kv_blocks=...) wraps existing words (NumPy
    uint32 or torch int32/uint32, any device, contiguous); the class methods build them."""

    def __init__(self, q_bits, kv_bits, *, heads, q_blocks, kv_blocks, batch=1,
                 block_q=DEFAULT_BLOCK, block_kv=DEFAULT_BLOCK, seqlen_q=None, seqlen_kv=None,
                 cu_seqlens_q=None, cu_seqlens_kv=None):
        self.batch, self.heads = int(batch), int(heads)
        self.q_blocks, self.kv_blocks = int(q_blocks), int(kv_blocks)
        self.block_q, self.block_kv = int(block_q), int(block_kv)
        if all(a is None for a in (seqlen_q, seqlen_kv, cu_seqlens_q, cu_seqlens_kv)):
            seqlen_q, seqlen_kv = self.q_blocks * self.block_q, self.kv_blocks * self.block_kv
        self.seqlens = SeqLens(self.batch, seqlen_q, seqlen_kv, cu_seqlens_q, cu_seqlens_kv)
        if self.seqlens.batch != self.batch:
            raise ValueError(f"argument 'cu_seqlens_q': describes {self.seqlens.batch} requests, "
                             f"symbols have batch {self.batch}")
        self.q_bits = self._words(q_bits, "q_bits", (self.batch, self.heads, self.q_words))
        self.kv_bits = self._words(
            kv_bits, "kv_bits", (self.batch, self.heads, self.q_blocks, self.kv_words))
        qv, kv = _arrays.view(self.q_bits, "q_bits"), _arrays.view(self.kv_bits, "kv_bits")
        if (qv.device, qv.device_index) != (kv.device, kv.device_index):
            raise ValueError("argument 'kv_bits': must be on the same device as q_bits")

    @staticmethod
    def _words(words, name, shape):
        if isinstance(words, np.ndarray) and words.dtype == np.int32:
            words = words.view(np.uint32)
        v = _arrays.view(words, name)
        if v.dtype not in (_lib.UINT32, _lib.INT32):
            raise ValueError(f"argument '{name}': expected uint32 (or int32) words, got "
                             f"{_lib.DTYPE_NAMES[v.dtype]}")
        expect = int(np.prod(shape, dtype=np.int64))
        if v.numel != expect:
            raise ValueError(f"argument '{name}': expected {expect} words (shape {shape}), got "
                             f"{v.numel}")
        if not v.is_contiguous():
            raise ValueError(f"argument '{name}': must be contiguous")
        return words.reshape(shape)

    # ---- shape and device ------------------------------------------------------------------
    @property
    def q_words(self):
        return (self.q_blocks + 31) // 32

    @property
    def kv_words(self):
        return (self.kv_blocks + 31) // 32

    @property
    def shape(self):
        return (self.batch, self.heads, self.q_blocks, self.kv_blocks)

    @property
    def is_cuda(self):
        return _arrays.view(self.q_bits, "q_bits").device == _lib.CUDA

    @property
    def device(self):
        v = _arrays.view(self.q_bits, "q_bits")
        return f"cuda:{v.device_index}" if v.device == _lib.CUDA else "cpu"

    def _like(self, q_bits, kv_bits):
        sl = self.seqlens
        return Symbols(q_bits, kv_bits, heads=self.heads, q_blocks=self.q_blocks,
                       kv_blocks=self.kv_blocks, batch=self.batch, block_q=self.block_q,
                       block_kv=self.block_kv, seqlen_q=None if sl.varlen else sl.seqlen_q,
                       seqlen_kv=None if sl.varlen else sl.seqlen_kv, cu_seqlens_q=sl.cu_q,
                       cu_seqlens_kv=sl.cu_kv)

    def to(self, device):
        """Copy on `device` ("cpu", "cuda", "cuda:1", torch.device); GPU words need torch."""
        dev = str(device)
        if dev == "cpu":
            if not _arrays.is_torch(self.q_bits):
                return self
            as_np = lambda t: t.detach().cpu().numpy().view(np.uint32)  # noqa: E731
            return self._like(as_np(self.q_bits), as_np(self.kv_bits))
        import torch

        def move(words):
            if isinstance(words, np.ndarray):
                words = torch.from_numpy(np.ascontiguousarray(words).view(np.int32))
            return words.to(device)

        return self._like(move(self.q_bits), move(self.kv_bits))

    def cpu(self):
        return self.to("cpu")

    def c(self):
        """The fo_symbols struct (valid while this object and its words are alive; read-only:
        one struct is kept and handed to every op while the words and fields stay the same —
        rebuilding it cost ~40 us per op call)."""
        fields = (self.batch, self.heads, self.q_blocks, self.kv_blocks, self.block_q,
                  self.block_kv)
        cached = self.__dict__.get("_c_struct")
        # The entry holds the word objects themselves and compares them by identity: an id()
        # could be reused by a new array once the old one is freed, handing out a stale pointer.
        if (cached is not None and cached[0] is self.q_bits and cached[1] is self.kv_bits
                and cached[2] == fields):
            return cached[3]
        s = _lib.SymbolsStruct()
        qv, kv = _arrays.view(self.q_bits, "q_bits"), _arrays.view(self.kv_bits, "kv_bits")
        # The C side trusts these fields to size its reads: re-check them against the words.
        if (qv.shape != (self.batch, self.heads, self.q_words)
                or kv.shape != (self.batch, self.heads, self.q_blocks, self.kv_words)):
            raise ValueError("argument 'symbols': shape fields no longer match the word arrays "
                             f"q_bits {qv.shape} / kv_bits {kv.shape}")
        s.q_bits, s.kv_bits = qv.data, kv.data
        s.batch, s.heads, s.q_blocks, s.kv_blocks = self.shape
        s.block_q, s.block_kv, s.device = self.block_q, self.block_kv, qv.device
        self._c_struct = (self.q_bits, self.kv_bits, fields, s)
        return s

    def _host(self):
        return self.cpu() if self.is_cuda else self

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def _from_words(cls, fn, args, seqlens, heads, block_q, block_kv):
        batch, heads, nq, nk = shape_for(seqlens, heads, block_q, block_kv)
        q = np.zeros((batch, heads, (nq + 31) // 32), dtype=np.uint32)
        kv = np.zeros((batch, heads, nq, (nk + 31) // 32), dtype=np.uint32)
        sl = seqlens.c()
        _lib.call(fn, *args(ctypes.byref(sl)), q.ctypes.data, q.size, kv.ctypes.data, kv.size)
        return cls(q, kv, heads=heads, q_blocks=nq, kv_blocks=nk, batch=batch, block_q=block_q,
                   block_kv=block_kv, seqlen_q=None if seqlens.varlen else seqlens.seqlen_q,
                   seqlen_kv=None if seqlens.varlen else seqlens.seqlen_kv,
                   cu_seqlens_q=seqlens.cu_q, cu_seqlens_kv=seqlens.cu_kv)

    @classmethod
    def dense(cls, heads, seqlen_q=None, seqlen_kv=None, *, batch=1, cu_seqlens_q=None,
              cu_seqlens_kv=None, block_q=DEFAULT_BLOCK, block_kv=DEFAULT_BLOCK):
        """Every in-range query block active and key block kept (padding bits 0)."""
        seqlens = SeqLens(batch, seqlen_q, seqlen_kv, cu_seqlens_q, cu_seqlens_kv)
        return cls._from_words(
            "flashomni_symbols_dense", lambda sl: (sl, int(heads), int(block_q), int(block_kv)),
            seqlens, heads, block_q, block_kv)

    @classmethod
    def from_masks(cls, q_mask, kv_mask, *, seqlen_q=None, seqlen_kv=None, cu_seqlens_q=None,
                   cu_seqlens_kv=None, block_q=DEFAULT_BLOCK, block_kv=DEFAULT_BLOCK):
        """q_mask bool/uint8 [B, H, nQ] (True = compute), kv_mask [B, H, nQ, nK] (True = keep).

        Without sequence lengths every block is taken as full (seqlen = blocks * block)."""
        qm = np.asarray(_arrays.to_numpy_host(q_mask)).astype(np.uint8, copy=False)
        km = np.asarray(_arrays.to_numpy_host(kv_mask)).astype(np.uint8, copy=False)
        if qm.ndim != 3:
            raise ValueError(f"argument 'q_mask': expected 3 dims [B, H, q_blocks], got {qm.ndim}")
        if km.ndim != 4:
            raise ValueError(f"argument 'kv_mask': expected 4 dims [B, H, q_blocks, kv_blocks], "
                             f"got {km.ndim}")
        default = SeqLens(qm.shape[0], qm.shape[2] * block_q, km.shape[3] * block_kv)
        seqlens = _seqlens_or(default, qm.shape[0], seqlen_q, seqlen_kv, cu_seqlens_q,
                              cu_seqlens_kv)
        qv, kv = _arrays.view(qm, "q_mask"), _arrays.view(km, "kv_mask")
        return cls._from_words(
            "flashomni_symbols_from_masks",
            lambda sl: (ctypes.byref(qv.c()), ctypes.byref(kv.c()), sl, int(block_q),
                        int(block_kv)),
            seqlens, qm.shape[1], block_q, block_kv)

    @classmethod
    def from_block_lists(cls, kv_num_blocks, kv_indices, q_mask=None, *, seqlen_q=None,
                         seqlen_kv=None, cu_seqlens_q=None, cu_seqlens_kv=None,
                         block_q=DEFAULT_BLOCK, block_kv=DEFAULT_BLOCK):
        """FlexAttention-style kv_num_blocks int32 [B, H, nQ], kv_indices int32 [B, H, nQ, max_kv]
        (q_mask optional). Without lengths: seqlen_q = nQ * block_q, seqlen_kv = max_kv * block_kv
        (a BlockMask's kv_indices are as wide as the key block count)."""
        num = np.asarray(_arrays.to_numpy_host(kv_num_blocks)).astype(np.int32, copy=False)
        idx = np.asarray(_arrays.to_numpy_host(kv_indices)).astype(np.int32, copy=False)
        if num.ndim != 3:
            raise ValueError(f"argument 'kv_num_blocks': expected 3 dims [B, H, q_blocks], got "
                             f"{num.ndim}")
        if idx.ndim != 4:
            raise ValueError("argument 'kv_indices': expected 4 dims [B, H, q_blocks, max_kv], "
                             f"got {idx.ndim}")
        default = SeqLens(num.shape[0], num.shape[2] * block_q, idx.shape[3] * block_kv)
        seqlens = _seqlens_or(default, num.shape[0], seqlen_q, seqlen_kv, cu_seqlens_q,
                              cu_seqlens_kv)
        nv, iv = _arrays.view(num, "kv_num_blocks"), _arrays.view(idx, "kv_indices")
        qm = None
        if q_mask is not None:
            qm = _arrays.view(
                np.asarray(_arrays.to_numpy_host(q_mask)).astype(np.uint8, copy=False), "q_mask")
        return cls._from_words(
            "flashomni_symbols_from_block_lists",
            lambda sl: (ctypes.byref(nv.c()), ctypes.byref(iv.c()),
                        ctypes.byref(_arrays.c_tensor(qm)), sl, int(block_q), int(block_kv)),
            seqlens, num.shape[1], block_q, block_kv)

    @classmethod
    def from_reference_packed(cls, q_packed, q_indptr, kv_packed, kv_indptr, *, heads,
                              seqlen_q=None, seqlen_kv=None, cu_seqlens_q=None, cu_seqlens_kv=None,
                              block_q=DEFAULT_BLOCK, block_kv=DEFAULT_BLOCK):
        """The public reference's byte format (uint8 packed, int32 indptr [B + 1] byte offsets)."""
        arrays = {}
        for name, arr, dt in (("q_packed", q_packed, np.uint8),
                              ("q_indptr", q_indptr, np.int32),
                              ("kv_packed", kv_packed, np.uint8),
                              ("kv_indptr", kv_indptr, np.int32)):
            host = np.ascontiguousarray(_arrays.to_numpy_host(arr)).astype(dt, copy=False)
            arrays[name] = _arrays.view(host, name)
        batch = arrays["q_indptr"].shape[0] - 1 if arrays["q_indptr"].ndim == 1 else 1
        seqlens = SeqLens(batch, seqlen_q, seqlen_kv, cu_seqlens_q, cu_seqlens_kv)
        return cls._from_words(
            "flashomni_symbols_from_reference_packed",
            lambda sl: tuple(ctypes.byref(v.c()) for v in arrays.values())
            + (sl, int(heads), int(block_q), int(block_kv)),
            seqlens, heads, block_q, block_kv)

    # ---- conversion out --------------------------------------------------------------------
    def to_masks(self):
        """(q_mask bool [B, H, nQ], kv_mask bool [B, H, nQ, nK]); padding entries False."""
        s = self._host()
        qm = np.zeros((self.batch, self.heads, self.q_blocks), dtype=np.bool_)
        km = np.zeros((self.batch, self.heads, self.q_blocks, self.kv_blocks), dtype=np.bool_)
        sym, sl = s.c(), s.seqlens.c()
        _lib.call("flashomni_symbols_to_masks", ctypes.byref(sym), ctypes.byref(sl),
                  ctypes.byref(_arrays.view(qm, "q_mask").c()),
                  ctypes.byref(_arrays.view(km, "kv_mask").c()))
        return qm, km

    def to_block_lists(self, max_kv=None):
        """(kv_num_blocks int32 [B, H, nQ], kv_indices int32 [B, H, nQ, max_kv], q_mask bool)."""
        s = self._host()
        max_kv = self.kv_blocks if max_kv is None else int(max_kv)
        num = np.zeros((self.batch, self.heads, self.q_blocks), dtype=np.int32)
        idx = np.zeros((self.batch, self.heads, self.q_blocks, max_kv), dtype=np.int32)
        qm = np.zeros((self.batch, self.heads, self.q_blocks), dtype=np.bool_)
        sym, sl = s.c(), s.seqlens.c()
        _lib.call("flashomni_symbols_to_block_lists", ctypes.byref(sym), ctypes.byref(sl),
                  ctypes.byref(_arrays.view(num, "kv_num_blocks").c()),
                  ctypes.byref(_arrays.view(idx, "kv_indices").c()),
                  ctypes.byref(_arrays.view(qm, "q_mask").c()))
        return num, idx, qm

    def to_reference_packed(self):
        """(q_packed uint8, q_indptr int32 [B + 1], kv_packed uint8, kv_indptr int32 [B + 1])."""
        s = self._host()
        sl = s.seqlens.c()
        qn, kn = ctypes.c_size_t(), ctypes.c_size_t()
        _lib.call("flashomni_symbols_reference_packed_size", ctypes.byref(sl), self.heads,
                  self.block_q, self.block_kv, ctypes.byref(qn), ctypes.byref(kn))
        qp, kp = np.zeros(qn.value, dtype=np.uint8), np.zeros(kn.value, dtype=np.uint8)
        qi = np.zeros(self.batch + 1, dtype=np.int32)
        ki = np.zeros(self.batch + 1, dtype=np.int32)
        sym = s.c()
        _lib.call("flashomni_symbols_to_reference_packed", ctypes.byref(sym), ctypes.byref(sl),
                  qp.ctypes.data, qp.size, qi.ctypes.data, kp.ctypes.data, kp.size, ki.ctypes.data)
        return qp, qi, kp, ki

    # ---- checks and statistics -------------------------------------------------------------
    def validate(self, seqlen_q=None, seqlen_kv=None, *, cu_seqlens_q=None, cu_seqlens_kv=None):
        """Raises ValueError naming the field unless the symbols fit these sequences (default: the
        ones they were built for). Host words are fully checked; GPU words only by shape."""
        seqlens = _seqlens_or(self.seqlens, self.batch, seqlen_q, seqlen_kv, cu_seqlens_q,
                              cu_seqlens_kv)
        sym, sl = self.c(), seqlens.c()
        _lib.call("flashomni_symbols_validate", ctypes.byref(sym), ctypes.byref(sl), self.heads)
        return self

    def density(self):
        """Layer summary: {"query", "query_token", "kv", "pair", "token_pair"} each a dict of
        mean / min / max / overall / count (symbols_stats.h). token_pair.overall is the fraction
        of attention FLOPs kept, query_token.overall that of GEMM-Q."""
        s = self._host()
        out = _lib.DensitySummary()
        sym, sl = s.c(), s.seqlens.c()
        _lib.call("flashomni_symbols_density_summary", ctypes.byref(sym), ctypes.byref(sl),
                  ctypes.byref(out))
        return {name: _stat_dict(getattr(out, name)) for name, _ in _lib.DensitySummary._fields_}

    def densities(self):
        """Per (b, h) statistics: a list of B * H dicts ordered (b, h)."""
        s = self._host()
        arr = (_lib.SymbolDensity * (self.batch * self.heads))()
        sym, sl = s.c(), s.seqlens.c()
        _lib.call("flashomni_symbols_densities", ctypes.byref(sym), ctypes.byref(sl), arr, len(arr))
        return [{f: getattr(d, f) for f, _ in _lib.SymbolDensity._fields_} for d in arr]

    # ---- element access (host) -------------------------------------------------------------
    def query(self, b, h, i):
        q = _arrays.to_numpy_host(self.q_bits).view(np.uint32)
        return bool((int(q[b, h, i // 32]) >> (i % 32)) & 1)

    def kv(self, b, h, i, j):
        kv = _arrays.to_numpy_host(self.kv_bits).view(np.uint32)
        return bool((int(kv[b, h, i, j // 32]) >> (j % 32)) & 1)

    def __repr__(self):
        return (f"Symbols(batch={self.batch}, heads={self.heads}, q_blocks={self.q_blocks}, "
                f"kv_blocks={self.kv_blocks}, block_q={self.block_q}, block_kv={self.block_kv}, "
                f"device={self.device!r}, seqlens={self.seqlens!r})")
