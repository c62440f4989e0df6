// FlashOmni core: host converters Symbols <-> dense masks, Flex block lists, reference packed
// bytes.
#include "flashomni/symbols_convert.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <string>
#include <string_view>

namespace flashomni {
namespace {

std::string shape_string(const int64_t* dims, int ndim) {
  std::string s = "[";
  for (int d = 0; d < ndim; ++d) s += (d ? ", " : "") + std::to_string(dims[d]);
  return s + "]";
}

void check_host_input(const TensorRef& t, const char* name, DType dtype, int ndim) {
  check_defined(t, name);
  check_device(t, name, Device::kCPU);
  check_dtype(t, name, {dtype});
  check_ndim(t, name, {ndim});
}

// `what` spells the expected dims by name, e.g. "[B, H, q_blocks]".
void check_shape(const TensorRef& t, const char* name, std::initializer_list<int64_t> expect,
                 const char* what) {
  const int64_t* e = expect.begin();
  bool same = true;
  for (int d = 0; d < t.ndim; ++d) same = same && t.shape[d] == e[d];
  FLASHOMNI_CHECK_ARG(same, name, "expected shape ", what, " = ",
                      shape_string(e, static_cast<int>(expect.size())), ", got ",
                      shape_string(t.shape, t.ndim));
}

// Heads are read from dim 1 of the first per-head tensor.
int32_t heads_of(const TensorRef& t, const char* name) {
  FLASHOMNI_CHECK_ARG(t.shape[1] > 0 && t.shape[1] <= std::numeric_limits<int32_t>::max(), name,
                      "expected dim 1 (heads) > 0, got ", t.shape[1]);
  return static_cast<int32_t>(t.shape[1]);
}

template <typename T>
T& at(const TensorRef& t, int64_t i0, int64_t i1, int64_t i2, int64_t i3 = 0) {
  int64_t off = i0 * t.stride[0] + i1 * t.stride[1] + i2 * t.stride[2];
  if (t.ndim > 3) off += i3 * t.stride[3];
  return t.ptr<T>()[off];
}

void set_bit(uint32_t* words, int32_t k) {
  words[k / 32] |= 1u << (k % 32);
}

// Reads a 0/1 flag; `in_range` false means the entry is padding and must be 0.
bool read_flag(uint8_t v, bool in_range, const char* name, const std::string& where,
               const std::string& range) {
  FLASHOMNI_CHECK_ARG(v <= 1, name, "entry ", where, " is ", static_cast<int>(v),
                      ", expected 0 or 1");
  FLASHOMNI_CHECK_ARG(v == 0 || in_range, name, "entry ", where, " is 1, expected 0: ", range);
  return v == 1;
}

std::string where3(int32_t b, int32_t h, int32_t i) {
  return "(b=" + std::to_string(b) + ", h=" + std::to_string(h) + ", i=" + std::to_string(i) + ")";
}

std::string where4(int32_t b, int32_t h, int32_t i, int64_t j, const char* jname = "j") {
  return "(b=" + std::to_string(b) + ", h=" + std::to_string(h) + ", i=" + std::to_string(i) +
         ", " + jname + "=" + std::to_string(j) + ")";
}

std::string request_range(int32_t b, int32_t nq, int32_t nk) {
  return "request " + std::to_string(b) + " has " + std::to_string(nq) + " query blocks and " +
         std::to_string(nk) + " key blocks";
}

void read_q_mask(const TensorRef& q_mask, const SeqLens& seqlens, Symbols& s) {
  const SymbolShape& sh = s.shape();
  for (int32_t b = 0; b < sh.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, sh.block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, sh.block_kv);
    for (int32_t h = 0; h < sh.heads; ++h) {
      uint32_t* words = s.q_bits().data() + sh.q_word_index(b, h, 0);
      for (int32_t i = 0; i < sh.q_blocks; ++i) {
        if (read_flag(at<uint8_t>(q_mask, b, h, i), i < nq, "q_mask", where3(b, h, i),
                      request_range(b, nq, nk))) {
          set_bit(words, i);
        }
      }
    }
  }
}

void write_q_mask(const SymbolsRef& s, const TensorRef& q_mask) {
  const SymbolShape& sh = s.shape;
  for (int32_t b = 0; b < sh.batch; ++b) {
    for (int32_t h = 0; h < sh.heads; ++h) {
      for (int32_t i = 0; i < sh.q_blocks; ++i) {
        at<uint8_t>(q_mask, b, h, i) = query_active(s, b, h, i) ? 1 : 0;
      }
    }
  }
}

// Segment sizes of the reference format for request b.
struct Segment {
  int64_t q_flags, kv_flags;
};

Segment segment_of(const SeqLens& seqlens, int32_t b, const SymbolShape& sh) {
  const int64_t nq = request_q_blocks(seqlens, b, sh.block_q);
  const int64_t nk = request_kv_blocks(seqlens, b, sh.block_kv);
  return Segment{nq * sh.heads, nq * sh.heads * nk};
}

int64_t bytes_for(int64_t flags) {
  return (flags + 7) / 8;
}

void check_indptr(const TensorRef& indptr, const char* name, const SeqLens& seqlens,
                  const SymbolShape& sh, bool kv) {
  check_host_input(indptr, name, DType::kInt32, 1);
  check_shape(indptr, name, {int64_t{sh.batch} + 1}, "[B + 1]");
  check_last_dim_contiguous(indptr, name);
  const int32_t* p = indptr.ptr<int32_t>();
  FLASHOMNI_CHECK_ARG(p[0] == 0, name, "expected indptr[0] = 0, got ", p[0]);
  for (int32_t b = 0; b < sh.batch; ++b) {
    FLASHOMNI_CHECK_ARG(p[b + 1] >= p[b], name, "expected non-decreasing byte offsets, got [",
                        b + 1, "] = ", p[b + 1], " < [", b, "] = ", p[b]);
    const Segment seg = segment_of(seqlens, b, sh);
    const int64_t expect = bytes_for(kv ? seg.kv_flags : seg.q_flags);
    FLASHOMNI_CHECK_ARG(p[b + 1] - p[b] == expect, name, "request ", b, " segment is ",
                        p[b + 1] - p[b], " bytes, expected ", expect, " (ceil(",
                        kv ? seg.kv_flags : seg.q_flags, " flags / 8), ",
                        kv ? "nQ * H * nK" : "nQ * H", " flags)");
  }
}

void check_packed(const TensorRef& packed, const char* name, const TensorRef& indptr) {
  check_host_input(packed, name, DType::kUInt8, 1);
  check_last_dim_contiguous(packed, name);
  const int64_t need = indptr.ptr<int32_t>()[indptr.shape[0] - 1];
  FLASHOMNI_CHECK_ARG(packed.shape[0] >= need, name, "expected at least ", need,
                      " bytes (indptr[B]), got ", packed.shape[0]);
}

bool packed_flag(const uint8_t* seg, int64_t k) {
  return (seg[k / 8] >> (k % 8)) & 1u;
}

// The unused high bits of a segment's last byte must be 0.
void check_segment_padding(const uint8_t* seg, int64_t flags, const char* name, int32_t b) {
  if (flags % 8 == 0) return;
  const uint8_t last = seg[flags / 8];
  const uint8_t pad = static_cast<uint8_t>(last >> (flags % 8));
  FLASHOMNI_CHECK_ARG(pad == 0, name, "request ", b, " segment has ", flags,
                      " flags but padding bit ", flags % 8 + std::countr_zero(pad),
                      " of its last byte is 1, expected 0");
}

}  // namespace

Symbols symbols_from_masks(const TensorRef& q_mask, const TensorRef& kv_mask,
                           const SeqLens& seqlens, int32_t block_q, int32_t block_kv) {
  check_host_input(q_mask, "q_mask", DType::kUInt8, 3);
  check_host_input(kv_mask, "kv_mask", DType::kUInt8, 4);
  const SymbolShape sh = symbol_shape_for(seqlens, heads_of(q_mask, "q_mask"), block_q, block_kv);
  check_shape(q_mask, "q_mask", {sh.batch, sh.heads, sh.q_blocks}, "[B, H, q_blocks]");
  check_shape(kv_mask, "kv_mask", {sh.batch, sh.heads, sh.q_blocks, sh.kv_blocks},
              "[B, H, q_blocks, kv_blocks]");
  Symbols s(sh);
  read_q_mask(q_mask, seqlens, s);
  for (int32_t b = 0; b < sh.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, block_kv);
    for (int32_t h = 0; h < sh.heads; ++h) {
      for (int32_t i = 0; i < sh.q_blocks; ++i) {
        uint32_t* row = s.kv_bits().data() + sh.kv_row_index(b, h, i);
        for (int32_t j = 0; j < sh.kv_blocks; ++j) {
          const uint8_t v = at<uint8_t>(kv_mask, b, h, i, j);
          if (v == 0) continue;
          if (read_flag(v, i < nq && j < nk, "kv_mask", where4(b, h, i, j),
                        request_range(b, nq, nk))) {
            set_bit(row, j);
          }
        }
      }
    }
  }
  return s;
}

void symbols_to_masks(const SymbolsRef& symbols, const SeqLens& seqlens, const TensorRef& q_mask,
                      const TensorRef& kv_mask) {
  const SymbolShape& sh = symbols.shape;
  validate_symbols(symbols, seqlens, sh.heads);
  check_host_input(q_mask, "q_mask", DType::kUInt8, 3);
  check_host_input(kv_mask, "kv_mask", DType::kUInt8, 4);
  check_shape(q_mask, "q_mask", {sh.batch, sh.heads, sh.q_blocks}, "[B, H, q_blocks]");
  check_shape(kv_mask, "kv_mask", {sh.batch, sh.heads, sh.q_blocks, sh.kv_blocks},
              "[B, H, q_blocks, kv_blocks]");
  write_q_mask(symbols, q_mask);
  for (int32_t b = 0; b < sh.batch; ++b) {
    for (int32_t h = 0; h < sh.heads; ++h) {
      for (int32_t i = 0; i < sh.q_blocks; ++i) {
        for (int32_t j = 0; j < sh.kv_blocks; ++j) {
          at<uint8_t>(kv_mask, b, h, i, j) = kv_active(symbols, b, h, i, j) ? 1 : 0;
        }
      }
    }
  }
}

Symbols symbols_from_block_lists(const TensorRef& kv_num_blocks, const TensorRef& kv_indices,
                                 const TensorRef& q_mask, const SeqLens& seqlens, int32_t block_q,
                                 int32_t block_kv) {
  check_host_input(kv_num_blocks, "kv_num_blocks", DType::kInt32, 3);
  check_host_input(kv_indices, "kv_indices", DType::kInt32, 4);
  const SymbolShape sh =
      symbol_shape_for(seqlens, heads_of(kv_num_blocks, "kv_num_blocks"), block_q, block_kv);
  check_shape(kv_num_blocks, "kv_num_blocks", {sh.batch, sh.heads, sh.q_blocks},
              "[B, H, q_blocks]");
  const int64_t max_kv = kv_indices.shape[3];
  check_shape(kv_indices, "kv_indices", {sh.batch, sh.heads, sh.q_blocks, max_kv},
              "[B, H, q_blocks, max_kv]");
  Symbols s(sh);
  if (q_mask.defined()) {
    check_host_input(q_mask, "q_mask", DType::kUInt8, 3);
    check_shape(q_mask, "q_mask", {sh.batch, sh.heads, sh.q_blocks}, "[B, H, q_blocks]");
    read_q_mask(q_mask, seqlens, s);
  }
  for (int32_t b = 0; b < sh.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, block_kv);
    for (int32_t h = 0; h < sh.heads; ++h) {
      for (int32_t i = 0; i < sh.q_blocks; ++i) {
        if (!q_mask.defined() && i < nq) s.set_query(b, h, i, true);
        const int32_t count = at<int32_t>(kv_num_blocks, b, h, i);
        FLASHOMNI_CHECK_ARG(count >= 0 && count <= max_kv, "kv_num_blocks", "entry ",
                            where3(b, h, i), " is ", count, ", expected 0 <= count <= ", max_kv,
                            " (kv_indices columns)");
        FLASHOMNI_CHECK_ARG(count == 0 || i < nq, "kv_num_blocks", "entry ", where3(b, h, i),
                            " is ", count,
                            ", expected 0 for a padded row: ", request_range(b, nq, nk));
        uint32_t* row = s.kv_bits().data() + sh.kv_row_index(b, h, i);
        for (int32_t t = 0; t < count; ++t) {
          const int32_t j = at<int32_t>(kv_indices, b, h, i, t);
          FLASHOMNI_CHECK_ARG(j >= 0 && j < nk, "kv_indices", "entry ", where4(b, h, i, t, "t"),
                              " is ", j, ", expected a key block in [0, ", nk,
                              "): ", request_range(b, nq, nk));
          set_bit(row, j);
        }
      }
    }
  }
  return s;
}

void symbols_to_block_lists(const SymbolsRef& symbols, const SeqLens& seqlens,
                            const TensorRef& kv_num_blocks, const TensorRef& kv_indices,
                            const TensorRef& q_mask) {
  const SymbolShape& sh = symbols.shape;
  validate_symbols(symbols, seqlens, sh.heads);
  check_host_input(kv_num_blocks, "kv_num_blocks", DType::kInt32, 3);
  check_host_input(kv_indices, "kv_indices", DType::kInt32, 4);
  check_shape(kv_num_blocks, "kv_num_blocks", {sh.batch, sh.heads, sh.q_blocks},
              "[B, H, q_blocks]");
  const int64_t max_kv = kv_indices.shape[3];
  check_shape(kv_indices, "kv_indices", {sh.batch, sh.heads, sh.q_blocks, max_kv},
              "[B, H, q_blocks, max_kv]");
  if (q_mask.defined()) {
    check_host_input(q_mask, "q_mask", DType::kUInt8, 3);
    check_shape(q_mask, "q_mask", {sh.batch, sh.heads, sh.q_blocks}, "[B, H, q_blocks]");
  }
  // Check the widest row before writing anything, so a failed call leaves the outputs untouched.
  int64_t widest = 0;
  const int64_t rows = static_cast<int64_t>(sh.batch) * sh.heads * sh.q_blocks;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t kept = 0;
    for (int32_t w = 0; w < sh.kv_words(); ++w) {
      kept += std::popcount(symbols.kv_bits[r * sh.kv_words() + w]);
    }
    widest = std::max(widest, kept);
  }
  FLASHOMNI_CHECK_ARG(max_kv >= widest, "kv_indices", "expected at least ", widest,
                      " columns (max_kv; the longest row keeps ", widest, " key blocks), got ",
                      max_kv);
  if (q_mask.defined()) write_q_mask(symbols, q_mask);
  for (int32_t b = 0; b < sh.batch; ++b) {
    for (int32_t h = 0; h < sh.heads; ++h) {
      for (int32_t i = 0; i < sh.q_blocks; ++i) {
        int32_t count = 0;
        for (int32_t j = 0; j < sh.kv_blocks; ++j) {
          if (kv_active(symbols, b, h, i, j)) at<int32_t>(kv_indices, b, h, i, count++) = j;
        }
        at<int32_t>(kv_num_blocks, b, h, i) = count;
        for (int64_t t = count; t < max_kv; ++t) at<int32_t>(kv_indices, b, h, i, t) = 0;
      }
    }
  }
}

ReferencePackedSymbols symbols_to_reference_packed(const SymbolsRef& symbols,
                                                   const SeqLens& seqlens) {
  const SymbolShape& sh = symbols.shape;
  validate_symbols(symbols, seqlens, sh.heads);
  ReferencePackedSymbols out;
  out.q_indptr.assign(static_cast<std::size_t>(sh.batch) + 1, 0);
  out.kv_indptr.assign(static_cast<std::size_t>(sh.batch) + 1, 0);
  int64_t q_total = 0;
  int64_t kv_total = 0;
  for (int32_t b = 0; b < sh.batch; ++b) {
    const Segment seg = segment_of(seqlens, b, sh);
    q_total += bytes_for(seg.q_flags);
    kv_total += bytes_for(seg.kv_flags);
    // The reference's offsets are int32: 2 GiB of flag bytes is the format's own limit.
    FLASHOMNI_CHECK_ARG(kv_total <= std::numeric_limits<int32_t>::max(), "symbols",
                        "the reference format's int32 byte offsets cannot address ", kv_total,
                        " bytes");
    out.q_indptr[b + 1] = static_cast<int32_t>(q_total);
    out.kv_indptr[b + 1] = static_cast<int32_t>(kv_total);
  }
  out.q_packed.assign(static_cast<std::size_t>(q_total), 0);
  out.kv_packed.assign(static_cast<std::size_t>(kv_total), 0);
  for (int32_t b = 0; b < sh.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, sh.block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, sh.block_kv);
    uint8_t* qseg = out.q_packed.data() + out.q_indptr[b];
    uint8_t* kvseg = out.kv_packed.data() + out.kv_indptr[b];
    for (int32_t i = 0; i < nq; ++i) {
      for (int32_t h = 0; h < sh.heads; ++h) {
        const int64_t qk = static_cast<int64_t>(i) * sh.heads + h;
        if (query_active(symbols, b, h, i)) qseg[qk / 8] |= static_cast<uint8_t>(1u << (qk % 8));
        for (int32_t j = 0; j < nk; ++j) {
          const int64_t k = qk * nk + j;
          if (kv_active(symbols, b, h, i, j)) kvseg[k / 8] |= static_cast<uint8_t>(1u << (k % 8));
        }
      }
    }
  }
  return out;
}

Symbols symbols_from_reference_packed(const TensorRef& q_packed, const TensorRef& q_indptr,
                                      const TensorRef& kv_packed, const TensorRef& kv_indptr,
                                      const SeqLens& seqlens, int32_t heads, int32_t block_q,
                                      int32_t block_kv) {
  const SymbolShape sh = symbol_shape_for(seqlens, heads, block_q, block_kv);
  check_indptr(q_indptr, "q_indptr", seqlens, sh, /*kv=*/false);
  check_indptr(kv_indptr, "kv_indptr", seqlens, sh, /*kv=*/true);
  check_packed(q_packed, "q_packed", q_indptr);
  check_packed(kv_packed, "kv_packed", kv_indptr);
  Symbols s(sh);
  for (int32_t b = 0; b < sh.batch; ++b) {
    const int32_t nq = request_q_blocks(seqlens, b, block_q);
    const int32_t nk = request_kv_blocks(seqlens, b, block_kv);
    const Segment seg = segment_of(seqlens, b, sh);
    const uint8_t* qseg = q_packed.ptr<uint8_t>() + q_indptr.ptr<int32_t>()[b];
    const uint8_t* kvseg = kv_packed.ptr<uint8_t>() + kv_indptr.ptr<int32_t>()[b];
    check_segment_padding(qseg, seg.q_flags, "q_packed", b);
    check_segment_padding(kvseg, seg.kv_flags, "kv_packed", b);
    for (int32_t i = 0; i < nq; ++i) {
      for (int32_t h = 0; h < heads; ++h) {
        const int64_t qk = static_cast<int64_t>(i) * heads + h;
        if (packed_flag(qseg, qk)) set_bit(s.q_bits().data() + sh.q_word_index(b, h, 0), i);
        uint32_t* row = s.kv_bits().data() + sh.kv_row_index(b, h, i);
        for (int32_t j = 0; j < nk; ++j) {
          if (packed_flag(kvseg, qk * nk + j)) set_bit(row, j);
        }
      }
    }
  }
  return s;
}

}  // namespace flashomni
