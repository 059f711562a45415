// The scalar reference dequantizers of ggml's block formats: the ground truth the vector loops
// (ggml_dequant_avx2.cpp, ...) must match bit for bit, and the loop for types they leave out.
// Each follows ggml's dequantize_row_* float order: the f16 scales widened exactly, the per-group
// scale (d · sc) rounded before it multiplies the quant, the min product rounded before the
// subtraction. This file is a common source, built without FMA flags, so nothing is fused.
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/ggml_block_scales.h"
#include "kernels/cpu/variants.h"
#include "kernels/ggml_quant.h"

namespace peft::kernels {
namespace cpu {

namespace {

// p: [2] bytes, a little-endian f16.
inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// blocks: [nblocks · 18] bytes (d, qs[16]) -> out: [nblocks · 32] f32; low nibbles first.
void q4_0_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 18, out += 32) {
    const float d = half_at(blocks);
    const uint8_t* qs = blocks + 2;
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
      out[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

// blocks: [nblocks · 20] bytes (d, m, qs[16]) -> out: [nblocks · 32] f32 = q · d + m.
void q4_1_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 20, out += 32) {
    const float d = half_at(blocks);
    const float m = half_at(blocks + 2);
    const uint8_t* qs = blocks + 4;
    for (int j = 0; j < 16; ++j) {
      out[j] = static_cast<float>(qs[j] & 0xF) * d + m;
      out[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
  }
}

// blocks: [nblocks · 22] bytes (d, qh[4], qs[16]) -> out: [nblocks · 32] f32. Bit e of the
// little-endian qh is element e's fifth bit.
void q5_0_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 22, out += 32) {
    const float d = half_at(blocks);
    uint32_t qh;
    std::memcpy(&qh, blocks + 2, 4);
    const uint8_t* qs = blocks + 6;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      out[j] = static_cast<float>(lo - 16) * d;
      out[j + 16] = static_cast<float>(hi - 16) * d;
    }
  }
}

// blocks: [nblocks · 24] bytes (d, m, qh[4], qs[16]) -> out: [nblocks · 32] f32 = q · d + m.
void q5_1_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 24, out += 32) {
    const float d = half_at(blocks);
    const float m = half_at(blocks + 2);
    uint32_t qh;
    std::memcpy(&qh, blocks + 4, 4);
    const uint8_t* qs = blocks + 8;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      out[j] = static_cast<float>(lo) * d + m;
      out[j + 16] = static_cast<float>(hi) * d + m;
    }
  }
}

// blocks: [nblocks · 34] bytes (d, qs[32] int8) -> out: [nblocks · 32] f32.
void q8_0_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 34, out += 32) {
    const float d = half_at(blocks);
    const int8_t* qs = reinterpret_cast<const int8_t*>(blocks + 2);
    for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(qs[j]) * d;
  }
}

// blocks: [nblocks · 84] bytes (scales[16], qs[64], d, dmin) -> out: [nblocks · 256] f32.
// Each half of 128 reads 32 quant bytes four times (2 bits each, low bits first); each group of
// 16 has a scale byte: low nibble × d, high nibble × dmin.
void q2_k_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 84) {
    const uint8_t* scales = blocks;
    const float d = half_at(blocks + 80);
    const float dmin = half_at(blocks + 82);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = blocks + 16 + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part, out += 16) {
          const int sc = *scales++;
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) out[l] = dl * static_cast<float>((q[16 * part + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

// blocks: [nblocks · 110] bytes (hmask[32], qs[64], scales[12], d) -> out: [nblocks · 256] f32.
// Quants as Q2_K's, less 4 where the element's hmask bit (bit 4·half + shift/2 of byte l) is clear.
void q3_k_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 110) {
    const uint8_t* hmask = blocks;
    int s[16];
    ggml_q3_k_scales(blocks + 96, s);
    const float d = half_at(blocks + 108);
    int is = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = blocks + 32 + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        const int mask = 1 << (4 * half + shift / 2);
        for (int part = 0; part < 2; ++part, out += 16) {
          const float dl = d * static_cast<float>(s[is++] - 32);
          for (int l = 0; l < 16; ++l) {
            const int i = 16 * part + l;
            const int v = ((q[i] >> shift) & 3) - ((hmask[i] & mask) ? 0 : 4);
            out[l] = dl * static_cast<float>(v);
          }
        }
      }
    }
  }
}

// blocks: [nblocks · 144] bytes (d, dmin, scales[12], qs[128]) -> out: [nblocks · 256] f32.
// Each chunk of 64 reads 32 bytes: low nibbles with scale pair 2c, high nibbles with pair 2c + 1.
void q4_k_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 144) {
    const float d = half_at(blocks);
    const float dmin = half_at(blocks + 2);
    const uint8_t* scales = blocks + 4;
    const uint8_t* q = blocks + 16;
    for (int c = 0; c < 4; ++c, q += 32) {
      int sc, m;
      ggml_k_scale_min(scales, 2 * c, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      ggml_k_scale_min(scales, 2 * c + 1, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *out++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *out++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// blocks: [nblocks · 176] bytes (d, dmin, scales[12], qh[32], qs[128]) -> out: [nblocks · 256] f32.
// As Q4_K, plus 16 where bit 2c (low nibbles) or 2c + 1 (high nibbles) of qh[l] is set.
void q5_k_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 176) {
    const float d = half_at(blocks);
    const float dmin = half_at(blocks + 2);
    const uint8_t* scales = blocks + 4;
    const uint8_t* qh = blocks + 16;
    const uint8_t* q = blocks + 48;
    for (int c = 0; c < 4; ++c, q += 32) {
      int sc, m;
      ggml_k_scale_min(scales, 2 * c, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      ggml_k_scale_min(scales, 2 * c + 1, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      const int lo_bit = 1 << (2 * c), hi_bit = 2 << (2 * c);
      for (int l = 0; l < 32; ++l) {
        *out++ = d1 * static_cast<float>((q[l] & 0xF) + ((qh[l] & lo_bit) ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        *out++ = d2 * static_cast<float>((q[l] >> 4) + ((qh[l] & hi_bit) ? 16 : 0)) - m2;
      }
    }
  }
}

// blocks: [nblocks · 210] bytes (ql[128], qh[64], scales[16] int8, d) -> out: [nblocks · 256] f32.
// Each half of 128 takes 64 ql bytes and 32 qh bytes: element 32k + l (k < 4, l < 32) is the
// low (k even) or high nibble of ql[l + 32·(k & 1)] with bits 2k, 2k+1 of qh[l] on top, less 32,
// times (d · scale) of its group of 16.
void q6_k_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 210) {
    const float d = half_at(blocks + 208);
    const int8_t* scales = reinterpret_cast<const int8_t*>(blocks + 192);
    for (int half = 0; half < 2; ++half, out += 128) {
      const uint8_t* ql = blocks + 64 * half;
      const uint8_t* qh = blocks + 128 + 32 * half;
      const int8_t* sc = scales + 8 * half;
      for (int k = 0; k < 4; ++k) {
        const uint8_t* qk = ql + 32 * (k & 1);
        const int nibble_shift = (k >> 1) * 4;
        for (int l = 0; l < 32; ++l) {
          const int q = (((qk[l] >> nibble_shift) & 0xF) | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
          out[32 * k + l] = d * static_cast<float>(sc[2 * k + l / 16]) * static_cast<float>(q);
        }
      }
    }
  }
}

// blocks: [nblocks · 18] bytes (d, qs[16]) -> out: [nblocks · 32] f32 = d · kGgmlIq4Values[nibble].
void iq4_nl_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 18, out += 32) {
    const float d = half_at(blocks);
    const uint8_t* qs = blocks + 2;
    for (int j = 0; j < 16; ++j) {
      out[j] = d * static_cast<float>(kGgmlIq4Values[qs[j] & 0xF]);
      out[j + 16] = d * static_cast<float>(kGgmlIq4Values[qs[j] >> 4]);
    }
  }
}

// blocks: [nblocks · 136] bytes (d, scales_h u16, scales_l[4], qs[128]) -> out: [nblocks · 256] f32.
// Sub-block i of 32 is laid out as IQ4_NL with d · (its 6-bit scale - 32).
void iq4_xs_scalar(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 136) {
    const float d = half_at(blocks);
    const uint8_t* qs = blocks + 8;
    for (int i = 0; i < 8; ++i, qs += 16, out += 32) {
      const float dl = d * static_cast<float>(ggml_iq4_xs_scale(blocks, i) - 32);
      for (int j = 0; j < 16; ++j) {
        out[j] = dl * static_cast<float>(kGgmlIq4Values[qs[j] & 0xF]);
        out[j + 16] = dl * static_cast<float>(kGgmlIq4Values[qs[j] >> 4]);
      }
    }
  }
}

const GgmlDequantSpans kSpans = {"scalar",     q4_0_scalar, q4_1_scalar, q5_0_scalar, q5_1_scalar,
                                 q8_0_scalar,  q2_k_scalar, q3_k_scalar, q4_k_scalar, q5_k_scalar,
                                 q6_k_scalar,  iq4_nl_scalar, iq4_xs_scalar};

}  // namespace

const GgmlDequantSpans& ggml_dequant_spans_scalar() { return kSpans; }

GgmlDequantLoop ggml_dequant_loop(const GgmlDequantSpans& spans, uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::Q4_0: return spans.q4_0;
    case GgmlType::Q4_1: return spans.q4_1;
    case GgmlType::Q5_0: return spans.q5_0;
    case GgmlType::Q5_1: return spans.q5_1;
    case GgmlType::Q8_0: return spans.q8_0;
    case GgmlType::Q2_K: return spans.q2_k;
    case GgmlType::Q3_K: return spans.q3_k;
    case GgmlType::Q4_K: return spans.q4_k;
    case GgmlType::Q5_K: return spans.q5_k;
    case GgmlType::Q6_K: return spans.q6_k;
    case GgmlType::IQ4_NL: return spans.iq4_nl;
    case GgmlType::IQ4_XS: return spans.iq4_xs;
  }
  return nullptr;
}

}  // namespace cpu

void ggml_dequantize_row_scalar(GgmlType type, const uint8_t* blocks, int64_t n, float* out) {
  const GgmlBlockFormat& format = ggml_block_format(type);
  const cpu::GgmlDequantLoop loop = cpu::ggml_dequant_loop(cpu::ggml_dequant_spans_scalar(), static_cast<uint32_t>(type));
  PEFT_CHECK(loop != nullptr, ErrorCode::Internal, std::string("No scalar dequantizer for ") + format.name);
  loop(blocks, n / format.block, out);
}

}  // namespace peft::kernels
