// AVX-512 loops of the 4-bit quantization: one 16-entry permute (vpermps) looks up 16 codes at once;
// quantization counts exceeded thresholds with mask adds and narrows the codes with vpmovdb.
#include <immintrin.h>

#include "kernels/cpu/quant4_thresholds.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

alignas(64) constexpr int32_t kRankToCode16[16] = {kFp4RankToCode[0], kFp4RankToCode[1], kFp4RankToCode[2],
                                                   kFp4RankToCode[3], kFp4RankToCode[4], kFp4RankToCode[5],
                                                   kFp4RankToCode[6], kFp4RankToCode[7]};

void dequant_avx512(const float* table, const uint8_t* packed, int64_t nbytes, float* out) {
  const __m512 lut = _mm512_loadu_ps(table);
  const __m128i low_nibble = _mm_set1_epi8(0x0f);
  for (int64_t j = 0; j < nbytes; j += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + j));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_nibble);
    const __m128i lo = _mm_and_si128(bytes, low_nibble);
    const __m512i codes0 = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(hi, lo));  // elements 2j .. 2j+15
    const __m512i codes1 = _mm512_cvtepu8_epi32(_mm_unpackhi_epi8(hi, lo));  // 2j+16 .. 2j+31
    _mm512_storeu_ps(out + 2 * j, _mm512_permutexvar_ps(codes0, lut));
    _mm512_storeu_ps(out + 2 * j + 16, _mm512_permutexvar_ps(codes1, lut));
  }
}

uint32_t abs_max_bits_avx512(const float* x, int64_t n) {
  const __m512i no_sign = _mm512_set1_epi32(0x7fffffff);
  __m512i best = _mm512_setzero_si512();
  for (int64_t i = 0; i < n; i += 16) {
    best = _mm512_max_epu32(best, _mm512_and_si512(_mm512_loadu_si512(x + i), no_sign));
  }
  return static_cast<uint32_t>(_mm512_reduce_max_epu32(best));
}

__m512i nf4_codes_avx512(__m512 x) {
  const __m512i one = _mm512_set1_epi32(1);
  __m512i count = _mm512_setzero_si512();
  for (float t : kNf4Thresholds) {  // ordered compare: NaN exceeds nothing and gets code 0
    count = _mm512_mask_add_epi32(count, _mm512_cmp_ps_mask(x, _mm512_set1_ps(t), _CMP_GT_OQ), count, one);
  }
  return count;
}

__m512i fp4_codes_avx512(__m512 x) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512 magnitude = _mm512_abs_ps(x);
  __m512i rank = _mm512_setzero_si512();
  for (float t : kFp4Thresholds) {
    rank = _mm512_mask_add_epi32(rank, _mm512_cmp_ps_mask(magnitude, _mm512_set1_ps(t), _CMP_GT_OQ), rank, one);
  }
  const __m512i codes = _mm512_permutexvar_epi32(rank, _mm512_load_si512(kRankToCode16));
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_or_epi32(codes, negative, codes, _mm512_set1_epi32(8));
}

template <__m512i (*Codes)(__m512)>
void quantize_avx512(const float* x, int64_t npairs, float inv, uint8_t* packed) {
  const __m512 scale = _mm512_set1_ps(inv);
  for (int64_t j = 0; j < npairs; j += 16) {
    const float* p = x + 2 * j;
    const __m128i c0 = _mm512_cvtepi32_epi8(Codes(_mm512_mul_ps(_mm512_loadu_ps(p), scale)));
    const __m128i c1 = _mm512_cvtepi32_epi8(Codes(_mm512_mul_ps(_mm512_loadu_ps(p + 16), scale)));
    const __m256i codes = _mm256_inserti128_si256(_mm256_castsi128_si256(c0), c1, 1);  // elements in order
    const __m256i even = _mm256_and_si256(codes, _mm256_set1_epi16(0x00ff));
    const __m256i pairs = _mm256_or_si256(_mm256_slli_epi16(even, 4), _mm256_srli_epi16(codes, 8));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(packed + j), _mm256_cvtepi16_epi8(pairs));
  }
}

const Quant4Spans kSpans = {"avx512", dequant_avx512, abs_max_bits_avx512, quantize_avx512<nf4_codes_avx512>, quantize_avx512<fp4_codes_avx512>};

}  // namespace

const Quant4Spans& quant4_spans_avx512() { return kSpans; }

}  // namespace peft::kernels::cpu
