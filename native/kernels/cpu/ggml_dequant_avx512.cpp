// AVX-512 dequantization of ggml's block formats, 16 floats per register (every format's groups
// of quants sharing a scale are 16 or 32 long, so each is one or two registers): the quants are
// widened to int32, converted (exactly) and multiplied by the same rounded scales the scalar loops
// use, so the bits match ggml_dequant_scalar.cpp. Where ggml subtracts or adds after a product,
// the product goes through rounded() first: this file is built with -mfma and GCC would otherwise
// fuse the intrinsics' mul and sub into one FMA, which rounds once instead of twice. (With f16 scales these
// products happen to be exact, at most 11 + 6 + 5 significant bits, so a fused form would give the
// same bits today; keeping ggml's order explicit does not rest on that.)
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/ggml_block_scales.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

// v as a register value the compiler cannot see through, so it is never fused into an add.
inline __m512 rounded(__m512 v) {
  __asm__("" : "+v"(v));
  return v;
}

// a · b - c (c already rounded) with the product rounded before the subtraction.
inline __m512 mul_sub(__m512 a, __m512 b, __m512 c) {
  return _mm512_sub_ps(rounded(_mm512_mul_ps(a, b)), rounded(c));
}

// a · b + c with the product rounded before the addition.
inline __m512 mul_add(__m512 a, __m512 b, __m512 c) {
  return _mm512_add_ps(rounded(_mm512_mul_ps(a, b)), rounded(c));
}

// p: [2] bytes, a little-endian f16 -> its exact f32 value in every lane.
inline __m512 half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _mm512_set1_ps(_cvtsh_ss(h));
}

// Integer scale factors exactly as f32 in every lane (the products with them are vector ops).
inline __m512 splat(int v) { return _mm512_set1_ps(static_cast<float>(v)); }

// 16 bytes, signed / unsigned, as 16 f32.
inline __m512 i8_f32(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }
inline __m512 u8_f32(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }

// Bytes v (each holding bits above `shift` as well) -> bits shift .. shift + width - 1 of each.
inline __m128i bits_at(__m128i v, int shift, int mask) {
  return _mm_and_si128(_mm_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm_set1_epi8(static_cast<char>(mask)));
}

// p: [16] bytes, unaligned.
inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// blocks: [nblocks · 18] bytes -> out: [nblocks · 32] f32.
void q4_0_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  const __m128i eight = _mm_set1_epi8(8);
  for (int64_t b = 0; b < nblocks; ++b, blocks += 18, out += 32) {
    const __m512 d = half_at(blocks);
    const __m128i q = load16(blocks + 2);
    _mm512_storeu_ps(out, _mm512_mul_ps(i8_f32(_mm_sub_epi8(bits_at(q, 0, 0xF), eight)), d));
    _mm512_storeu_ps(out + 16, _mm512_mul_ps(i8_f32(_mm_sub_epi8(bits_at(q, 4, 0xF), eight)), d));
  }
}

// blocks: [nblocks · 20] bytes -> out: [nblocks · 32] f32 = q · d + m.
void q4_1_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 20, out += 32) {
    const __m512 d = half_at(blocks);
    const __m512 m = half_at(blocks + 2);
    const __m128i q = load16(blocks + 4);
    _mm512_storeu_ps(out, mul_add(u8_f32(bits_at(q, 0, 0xF)), d, m));
    _mm512_storeu_ps(out + 16, mul_add(u8_f32(bits_at(q, 4, 0xF)), d, m));
  }
}

// The 5-bit quants of elements e0 .. e0 + 15 of a Q5 block: 16 nibbles with bit e of qh above each.
inline __m512i q5_values(__m128i nibbles, __m512i qh, int e0) {
  const __m512i shifts =
      _mm512_add_epi32(_mm512_set1_epi32(e0), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i high = _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(qh, shifts), _mm512_set1_epi32(1)), 4);
  return _mm512_or_si512(_mm512_cvtepu8_epi32(nibbles), high);
}

// blocks: [nblocks · 22] bytes -> out: [nblocks · 32] f32.
void q5_0_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  const __m512i sixteen = _mm512_set1_epi32(16);
  for (int64_t b = 0; b < nblocks; ++b, blocks += 22, out += 32) {
    const __m512 d = half_at(blocks);
    uint32_t bits;
    std::memcpy(&bits, blocks + 2, 4);
    const __m512i qh = _mm512_set1_epi32(static_cast<int>(bits));
    const __m128i q = load16(blocks + 6);
    const __m512i lo = _mm512_sub_epi32(q5_values(bits_at(q, 0, 0xF), qh, 0), sixteen);
    const __m512i hi = _mm512_sub_epi32(q5_values(bits_at(q, 4, 0xF), qh, 16), sixteen);
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
    _mm512_storeu_ps(out + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
  }
}

// blocks: [nblocks · 24] bytes -> out: [nblocks · 32] f32 = q · d + m.
void q5_1_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 24, out += 32) {
    const __m512 d = half_at(blocks);
    const __m512 m = half_at(blocks + 2);
    uint32_t bits;
    std::memcpy(&bits, blocks + 4, 4);
    const __m512i qh = _mm512_set1_epi32(static_cast<int>(bits));
    const __m128i q = load16(blocks + 8);
    _mm512_storeu_ps(out, mul_add(_mm512_cvtepi32_ps(q5_values(bits_at(q, 0, 0xF), qh, 0)), d, m));
    _mm512_storeu_ps(out + 16, mul_add(_mm512_cvtepi32_ps(q5_values(bits_at(q, 4, 0xF), qh, 16)), d, m));
  }
}

// blocks: [nblocks · 34] bytes -> out: [nblocks · 32] f32.
void q8_0_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 34, out += 32) {
    const __m512 d = half_at(blocks);
    _mm512_storeu_ps(out, _mm512_mul_ps(i8_f32(load16(blocks + 2)), d));
    _mm512_storeu_ps(out + 16, _mm512_mul_ps(i8_f32(load16(blocks + 18)), d));
  }
}

// blocks: [nblocks · 84] bytes -> out: [nblocks · 256] f32 (layout: ggml_dequant_scalar.cpp).
void q2_k_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 84) {
    const uint8_t* scales = blocks;
    const __m512 d = half_at(blocks + 80);
    const __m512 dmin = half_at(blocks + 82);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = blocks + 16 + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part, out += 16) {
          const int sc = *scales++;
          const __m512 dl = _mm512_mul_ps(d, splat(sc & 0xF));
          const __m512 ml = _mm512_mul_ps(dmin, splat(sc >> 4));
          _mm512_storeu_ps(out, mul_sub(dl, u8_f32(bits_at(load16(q + 16 * part), shift, 3)), ml));
        }
      }
    }
  }
}

// blocks: [nblocks · 110] bytes -> out: [nblocks · 256] f32.
void q3_k_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  const __m128i four = _mm_set1_epi8(4);
  for (int64_t b = 0; b < nblocks; ++b, blocks += 110) {
    int s[16];
    ggml_q3_k_scales(blocks + 96, s);
    const __m512 d = half_at(blocks + 108);
    int is = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = blocks + 32 + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        const __m128i mask = _mm_set1_epi8(static_cast<char>(1 << (4 * half + shift / 2)));
        for (int part = 0; part < 2; ++part, out += 16) {
          const __m512 dl = _mm512_mul_ps(d, splat(s[is++] - 32));
          const __m128i low = bits_at(load16(q + 16 * part), shift, 3);
          const __m128i clear = _mm_cmpeq_epi8(_mm_and_si128(load16(blocks + 16 * part), mask), _mm_setzero_si128());
          _mm512_storeu_ps(out, _mm512_mul_ps(i8_f32(_mm_sub_epi8(low, _mm_and_si128(clear, four))), dl));
        }
      }
    }
  }
}

// blocks: [nblocks · 144] bytes -> out: [nblocks · 256] f32.
void q4_k_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 144) {
    const __m512 d = half_at(blocks);
    const __m512 dmin = half_at(blocks + 2);
    const uint8_t* q = blocks + 16;
    for (int c = 0; c < 4; ++c, q += 32, out += 64) {
      int sc, m;
      ggml_k_scale_min(blocks + 4, 2 * c, &sc, &m);
      const __m512 d1 = _mm512_mul_ps(d, splat(sc)), m1 = _mm512_mul_ps(dmin, splat(m));
      ggml_k_scale_min(blocks + 4, 2 * c + 1, &sc, &m);
      const __m512 d2 = _mm512_mul_ps(d, splat(sc)), m2 = _mm512_mul_ps(dmin, splat(m));
      for (int p = 0; p < 2; ++p) {
        const __m128i bytes = load16(q + 16 * p);
        _mm512_storeu_ps(out + 16 * p, mul_sub(d1, u8_f32(bits_at(bytes, 0, 0xF)), m1));
        _mm512_storeu_ps(out + 32 + 16 * p, mul_sub(d2, u8_f32(bits_at(bytes, 4, 0xF)), m2));
      }
    }
  }
}

// blocks: [nblocks · 176] bytes -> out: [nblocks · 256] f32.
void q5_k_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  const __m128i sixteen = _mm_set1_epi8(16);
  for (int64_t b = 0; b < nblocks; ++b, blocks += 176) {
    const __m512 d = half_at(blocks);
    const __m512 dmin = half_at(blocks + 2);
    const uint8_t* qh = blocks + 16;
    const uint8_t* q = blocks + 48;
    for (int c = 0; c < 4; ++c, q += 32, out += 64) {
      int sc, m;
      ggml_k_scale_min(blocks + 4, 2 * c, &sc, &m);
      const __m512 d1 = _mm512_mul_ps(d, splat(sc)), m1 = _mm512_mul_ps(dmin, splat(m));
      ggml_k_scale_min(blocks + 4, 2 * c + 1, &sc, &m);
      const __m512 d2 = _mm512_mul_ps(d, splat(sc)), m2 = _mm512_mul_ps(dmin, splat(m));
      const __m128i lo_bit = _mm_set1_epi8(static_cast<char>(1 << (2 * c)));
      const __m128i hi_bit = _mm_set1_epi8(static_cast<char>(2 << (2 * c)));
      for (int p = 0; p < 2; ++p) {
        const __m128i bytes = load16(q + 16 * p);
        const __m128i h = load16(qh + 16 * p);
        const __m128i lo_high = _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(h, lo_bit), lo_bit), sixteen);
        const __m128i hi_high = _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(h, hi_bit), hi_bit), sixteen);
        _mm512_storeu_ps(out + 16 * p, mul_sub(d1, u8_f32(_mm_or_si128(bits_at(bytes, 0, 0xF), lo_high)), m1));
        _mm512_storeu_ps(out + 32 + 16 * p, mul_sub(d2, u8_f32(_mm_or_si128(bits_at(bytes, 4, 0xF), hi_high)), m2));
      }
    }
  }
}

// blocks: [nblocks · 210] bytes -> out: [nblocks · 256] f32 (layout: ggml_dequant_scalar.cpp).
void q6_k_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  const __m128i thirty_two = _mm_set1_epi8(32);
  for (int64_t b = 0; b < nblocks; ++b, blocks += 210) {
    const __m512 d = half_at(blocks + 208);
    const int8_t* scales = reinterpret_cast<const int8_t*>(blocks + 192);
    for (int half = 0; half < 2; ++half, out += 128) {
      const uint8_t* ql = blocks + 64 * half;
      const uint8_t* qh = blocks + 128 + 32 * half;
      const int8_t* sc = scales + 8 * half;
      for (int k = 0; k < 4; ++k) {
        for (int p = 0; p < 2; ++p) {
          const __m128i low = bits_at(load16(ql + 32 * (k & 1) + 16 * p), (k >> 1) * 4, 0xF);
          const __m128i high = _mm_slli_epi16(bits_at(load16(qh + 16 * p), 2 * k, 3), 4);  // < 64: no carry
          const __m512 scale = _mm512_mul_ps(d, splat(sc[2 * k + p]));
          const __m128i q = _mm_sub_epi8(_mm_or_si128(low, high), thirty_two);
          _mm512_storeu_ps(out + 32 * k + 16 * p, _mm512_mul_ps(scale, i8_f32(q)));
        }
      }
    }
  }
}

// qs: [16] bytes -> out: [32] f32 = scale · the IQ4 values of the low nibbles, then the high ones.
inline void iq4_32(const uint8_t* qs, __m512 scale, float* out) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kGgmlIq4Values));
  const __m128i q = load16(qs);
  _mm512_storeu_ps(out, _mm512_mul_ps(scale, i8_f32(_mm_shuffle_epi8(table, bits_at(q, 0, 0xF)))));
  _mm512_storeu_ps(out + 16, _mm512_mul_ps(scale, i8_f32(_mm_shuffle_epi8(table, bits_at(q, 4, 0xF)))));
}

// blocks: [nblocks · 18] bytes -> out: [nblocks · 32] f32.
void iq4_nl_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 18, out += 32) iq4_32(blocks + 2, half_at(blocks), out);
}

// blocks: [nblocks · 136] bytes -> out: [nblocks · 256] f32.
void iq4_xs_avx512(const uint8_t* blocks, int64_t nblocks, float* out) {
  for (int64_t b = 0; b < nblocks; ++b, blocks += 136) {
    const __m512 d = half_at(blocks);
    for (int i = 0; i < 8; ++i, out += 32) {
      iq4_32(blocks + 8 + 16 * i, _mm512_mul_ps(d, splat(ggml_iq4_xs_scale(blocks, i) - 32)), out);
    }
  }
}

const GgmlDequantSpans kSpans = {"avx512",      q4_0_avx512, q4_1_avx512,  q5_0_avx512,  q5_1_avx512,
                                 q8_0_avx512,   q2_k_avx512, q3_k_avx512,  q4_k_avx512,  q5_k_avx512,
                                 q6_k_avx512,   iq4_nl_avx512, iq4_xs_avx512};

}  // namespace

const GgmlDequantSpans& ggml_dequant_spans_avx512() { return kSpans; }

}  // namespace peft::kernels::cpu
