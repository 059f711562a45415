// The scalar reference loops of the 4-bit quantization: the ground truth for the vector variants,
// and the tails they leave.
#include <cstring>

#include "kernels/cpu/quant4_thresholds.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

uint8_t nf4_code_scalar(float x) {
  uint8_t code = 0;
  for (float t : kNf4Thresholds) code += x > t ? 1 : 0;
  return code;
}

uint8_t fp4_code_scalar(float x) {
  const float a = x < 0 ? -x : x;  // NaN stays NaN and ranks 0, as in bitsandbytes' tree
  int rank = 0;
  for (float t : kFp4Thresholds) rank += a > t ? 1 : 0;
  return static_cast<uint8_t>(kFp4RankToCode[rank] | (x < 0 ? 8 : 0));
}

void dequant_scalar(const float* table, const uint8_t* packed, int64_t nbytes, float* out) {
  for (int64_t j = 0; j < nbytes; ++j) {
    out[2 * j] = table[packed[j] >> 4];
    out[2 * j + 1] = table[packed[j] & 15];
  }
}

uint32_t abs_max_bits_scalar(const float* x, int64_t n) {
  uint32_t best = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, x + i, 4);
    bits &= 0x7fffffffu;
    best = bits > best ? bits : best;
  }
  return best;
}

void quantize_nf4_scalar(const float* x, int64_t npairs, float inv, uint8_t* packed) {
  for (int64_t j = 0; j < npairs; ++j) {
    packed[j] = static_cast<uint8_t>(nf4_code_scalar(x[2 * j] * inv) << 4 | nf4_code_scalar(x[2 * j + 1] * inv));
  }
}

void quantize_fp4_scalar(const float* x, int64_t npairs, float inv, uint8_t* packed) {
  for (int64_t j = 0; j < npairs; ++j) {
    packed[j] = static_cast<uint8_t>(fp4_code_scalar(x[2 * j] * inv) << 4 | fp4_code_scalar(x[2 * j + 1] * inv));
  }
}

const Quant4Spans kSpans = {"scalar", dequant_scalar, abs_max_bits_scalar, quantize_nf4_scalar, quantize_fp4_scalar};

}  // namespace

const Quant4Spans& quant4_spans_scalar() { return kSpans; }

}  // namespace peft::kernels::cpu
