// FlashOmni core: host/device-neutral conversions between float and the 16-bit storage types.
// Round-to-nearest-even, NaN preserved; used by the CPU backend, tests and converters.
#pragma once

#include <cstdint>
#include <cstring>

#include "flashomni/common.h"

namespace flashomni {

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float fp16_to_float(uint16_t h);
uint16_t float_to_fp16(float f);

// Reads element `i` (flat, in elements) of a storage array as double.
double load_as_double(const void* data, DType dtype, int64_t i);
// Writes `value` rounded to the storage type.
void store_from_double(void* data, DType dtype, int64_t i, double value);

}  // namespace flashomni
