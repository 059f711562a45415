// AVX2 loops of the 4-bit quantization: dequantization looks codes up in the 16-float table with
// two 8-entry permutes and a blend on the code's bit 3; quantization counts the thresholds each
// scaled value exceeds (8 lanes at a time) and packs the codes into nibbles with byte packs.
#include <immintrin.h>

#include "kernels/cpu/quant4_thresholds.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

// table[codes] for the 8 codes in the low 8 bytes of `codes`.
__m256 lookup8_avx2(__m256 table_lo, __m256 table_hi, __m128i codes) {
  const __m256i idx = _mm256_cvtepu8_epi32(codes);
  const __m256 lo = _mm256_permutevar8x32_ps(table_lo, idx);  // uses the low 3 bits
  const __m256 hi = _mm256_permutevar8x32_ps(table_hi, idx);
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));  // bit 3 -> sign
}

void dequant_avx2(const float* table, const uint8_t* packed, int64_t nbytes, float* out) {
  const __m256 table_lo = _mm256_loadu_ps(table);
  const __m256 table_hi = _mm256_loadu_ps(table + 8);
  const __m128i low_nibble = _mm_set1_epi8(0x0f);
  for (int64_t j = 0; j < nbytes; j += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + j));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_nibble);
    const __m128i lo = _mm_and_si128(bytes, low_nibble);
    const __m128i codes0 = _mm_unpacklo_epi8(hi, lo);  // elements 2j .. 2j+15 in order
    const __m128i codes1 = _mm_unpackhi_epi8(hi, lo);  // elements 2j+16 .. 2j+31
    float* o = out + 2 * j;
    _mm256_storeu_ps(o, lookup8_avx2(table_lo, table_hi, codes0));
    _mm256_storeu_ps(o + 8, lookup8_avx2(table_lo, table_hi, _mm_srli_si128(codes0, 8)));
    _mm256_storeu_ps(o + 16, lookup8_avx2(table_lo, table_hi, codes1));
    _mm256_storeu_ps(o + 24, lookup8_avx2(table_lo, table_hi, _mm_srli_si128(codes1, 8)));
  }
}

uint32_t abs_max_bits_avx2(const float* x, int64_t n) {
  const __m256i no_sign = _mm256_set1_epi32(0x7fffffff);
  __m256i best0 = _mm256_setzero_si256(), best1 = _mm256_setzero_si256();
  for (int64_t i = 0; i < n; i += 16) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 8));
    best0 = _mm256_max_epu32(best0, _mm256_and_si256(a, no_sign));
    best1 = _mm256_max_epu32(best1, _mm256_and_si256(b, no_sign));
  }
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_max_epu32(best0, best1));
  uint32_t best = 0;
  for (uint32_t v : lanes) best = v > best ? v : best;
  return best;
}

__m256i nf4_codes_avx2(__m256 x) {
  __m256i count = _mm256_setzero_si256();
  for (float t : kNf4Thresholds) {  // ordered compare: NaN exceeds nothing and gets code 0
    count = _mm256_sub_epi32(count, _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_set1_ps(t), _CMP_GT_OQ)));
  }
  return count;
}

__m256i fp4_codes_avx2(__m256 x) {
  const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  __m256i rank = _mm256_setzero_si256();
  for (float t : kFp4Thresholds) {
    rank = _mm256_sub_epi32(rank, _mm256_castps_si256(_mm256_cmp_ps(magnitude, _mm256_set1_ps(t), _CMP_GT_OQ)));
  }
  const __m256i rank_to_code = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kFp4RankToCode));
  const __m256i negative = _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
  return _mm256_or_si256(_mm256_permutevar8x32_epi32(rank_to_code, rank),
                         _mm256_and_si256(negative, _mm256_set1_epi32(8)));
}

// Four vectors of 8 codes (elements 0..31 in order) -> 16 bytes, element 2j in the high nibble.
__m128i pack_nibbles_avx2(__m256i c0, __m256i c1, __m256i c2, __m256i c3) {
  // packs interleave 128-bit lanes: the bytes come out as dwords c0lo c1lo c2lo c3lo | c0hi c1hi c2hi c3hi.
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
  const __m256i ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  const __m256i even = _mm256_and_si256(ordered, _mm256_set1_epi16(0x00ff));
  const __m256i odd = _mm256_srli_epi16(ordered, 8);
  const __m256i pairs = _mm256_or_si256(_mm256_slli_epi16(even, 4), odd);  // one byte value per 16-bit lane
  return _mm_packus_epi16(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256(pairs, 1));
}

template <__m256i (*Codes)(__m256)>
void quantize_avx2(const float* x, int64_t npairs, float inv, uint8_t* packed) {
  const __m256 scale = _mm256_set1_ps(inv);
  for (int64_t j = 0; j < npairs; j += 16) {
    const float* p = x + 2 * j;
    const __m256i c0 = Codes(_mm256_mul_ps(_mm256_loadu_ps(p), scale));
    const __m256i c1 = Codes(_mm256_mul_ps(_mm256_loadu_ps(p + 8), scale));
    const __m256i c2 = Codes(_mm256_mul_ps(_mm256_loadu_ps(p + 16), scale));
    const __m256i c3 = Codes(_mm256_mul_ps(_mm256_loadu_ps(p + 24), scale));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(packed + j), pack_nibbles_avx2(c0, c1, c2, c3));
  }
}

const Quant4Spans kSpans = {"avx2", dequant_avx2, abs_max_bits_avx2, quantize_avx2<nf4_codes_avx2>, quantize_avx2<fp4_codes_avx2>};

}  // namespace

const Quant4Spans& quant4_spans_avx2() { return kSpans; }

}  // namespace peft::kernels::cpu
