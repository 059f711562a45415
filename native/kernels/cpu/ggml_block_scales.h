// The integer side of ggml's block scales, shared by the scalar and vector dequantizers: the
// IQ4 value table and the unpacking of the packed 6-bit scales. The functions are static (each
// including file compiles its own copy with its own -m flags, so no code is shared between
// instruction sets) and integer-only, so every copy gives the same answers.
#pragma once
#include <cstdint>

namespace peft::kernels::cpu {

// The 16 values an IQ4_NL / IQ4_XS nibble selects (ggml's kvalues_iq4nl).
constexpr int8_t kGgmlIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// scales: [12] bytes -> the K-quants' 6-bit scale and min of pair j < 8 (get_scale_min_k4):
// pairs 0-3 are the low 6 bits of bytes j and j + 4; pairs 4-7 take the nibbles of byte j + 4
// with the top 2 bits of bytes j - 4 (scale) and j (min) above them.
static inline void ggml_k_scale_min(const uint8_t* scales, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// scales: [12] bytes -> s: [16] Q3_K's 6-bit group scales (before the -32). Scale j's low four
// bits are a nibble of byte j % 4 (+4 for j in 4-7 and 12-15), the low nibble for j < 8 and the
// high one after; its top two bits are bits 2·(j / 4), +1 of byte 8 + j % 4.
static inline void ggml_q3_k_scales(const uint8_t* scales, int* s) {
  for (int j = 0; j < 16; ++j) {
    const int group = j / 4;
    const int i = j % 4;
    const uint8_t low_byte = scales[(group & 1) * 4 + i];
    const int low = group < 2 ? (low_byte & 0xF) : (low_byte >> 4);
    s[j] = low | (((scales[8 + i] >> (2 * group)) & 3) << 4);
  }
}

// block: [136] bytes of IQ4_XS -> the 6-bit scale of sub-block i < 8 (before the -32): nibble i
// of scales_l (bytes 4-7) with bits 2i, 2i + 1 of the little-endian scales_h (bytes 2-3) above.
static inline int ggml_iq4_xs_scale(const uint8_t* block, int i) {
  const int scales_h = block[2] | (block[3] << 8);
  return ((block[4 + i / 2] >> (4 * (i % 2))) & 0xF) | (((scales_h >> (2 * i)) & 3) << 4);
}

}  // namespace peft::kernels::cpu
