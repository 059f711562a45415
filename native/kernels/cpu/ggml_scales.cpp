// Finds block scales that are NaN or infinite in ggml block data. A block's values are its f16
// scales times small integers, so finite scales give finite weights: checking the scales (a few
// bytes per block) stands for dequantizing the whole tensor, which a 7B model cannot afford at load.
#include <cstring>

#include "kernels/ggml_quant.h"

namespace peft::kernels {

namespace {

// Byte offsets of the f16 scale fields in a block of `type` (ggml-common.h's layouts); -1 ends.
struct ScaleFields {
  int first, second;
};

ScaleFields scale_fields(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: return {0, 2};   // d, then m / dmin
    case GgmlType::Q2_K: return {80, 82};  // after scales[16] and qs[64]: d, dmin
    case GgmlType::Q3_K: return {108, -1};  // after hmask[32], qs[64], scales[12]
    case GgmlType::Q6_K: return {208, -1};  // after ql[128], qh[64], scales[16]
    default: return {0, -1};                // Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS: d first
  }
}

bool f16_nonfinite(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return (h & 0x7c00u) == 0x7c00u;  // exponent all ones: Inf or NaN
}

}  // namespace

int64_t ggml_first_nonfinite_block(GgmlType type, const uint8_t* blocks, int64_t nblocks) {
  const ScaleFields f = scale_fields(type);
  const int64_t bytes = ggml_block_format(type).bytes;
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint8_t* block = blocks + b * bytes;
    if (f16_nonfinite(block + f.first) || (f.second >= 0 && f16_nonfinite(block + f.second))) return b;
  }
  return -1;
}

}  // namespace peft::kernels
