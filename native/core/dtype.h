// Element types and their scalar conversions (bf16 and f16 rounding is round-to-nearest-even).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace peft {

enum class DType : uint8_t { F32, BF16, F16, I32, U8 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
// Parses "f32" | "bf16" | "f16" | "i32" | "u8"; throws E_DTYPE naming the accepted values otherwise.
DType parse_dtype(const std::string& name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest, ties to even; NaN stays a (quiet) NaN with its sign.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace peft
