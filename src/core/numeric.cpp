// FlashOmni core: fp16 conversions and dtype-generic element access for the CPU backend.
#include "flashomni/numeric.h"

#include <cmath>

namespace flashomni {

float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(man), -24);  // zero or subnormal
    return sign ? -f : f;
  }
  uint32_t bits;
  if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / nan
  } else {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  }
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_fp16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;        // nan
  if (abs >= 0x477ff000u) return sign | 0x7c00u;       // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                             // below the smallest normal 2^-14
    // Subnormal: value / 2^-24 rounded to nearest even.
    float a;
    std::memcpy(&a, &abs, 4);
    const float scaled = a * 16777216.0f;
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return sign | static_cast<uint16_t>((rounded - (112u << 23)) >> 13);
}

double load_as_double(const void* data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kFloat32: return static_cast<const float*>(data)[i];
    case DType::kFloat64: return static_cast<const double*>(data)[i];
    case DType::kFloat16: return fp16_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::kBFloat16: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::kInt32: return static_cast<const int32_t*>(data)[i];
    case DType::kUInt32: return static_cast<const uint32_t*>(data)[i];
    case DType::kUInt8: return static_cast<const uint8_t*>(data)[i];
  }
  return 0.0;
}

void store_from_double(void* data, DType dtype, int64_t i, double value) {
  switch (dtype) {
    case DType::kFloat32: static_cast<float*>(data)[i] = static_cast<float>(value); return;
    case DType::kFloat64: static_cast<double*>(data)[i] = value; return;
    case DType::kFloat16:
      static_cast<uint16_t*>(data)[i] = float_to_fp16(static_cast<float>(value));
      return;
    case DType::kBFloat16:
      static_cast<uint16_t*>(data)[i] = float_to_bf16(static_cast<float>(value));
      return;
    case DType::kInt32: static_cast<int32_t*>(data)[i] = static_cast<int32_t>(value); return;
    case DType::kUInt32: static_cast<uint32_t*>(data)[i] = static_cast<uint32_t>(value); return;
    case DType::kUInt8: static_cast<uint8_t*>(data)[i] = static_cast<uint8_t>(value); return;
  }
}

}  // namespace flashomni
