// AVX-512-BF16 GEMM register tile for bf16 operands: 12 rows x 32 columns, f32 accumulators.
// vdpbf16ps multiplies pairs of bf16 values along K and adds both products into one f32 lane,
// so panels hold K in pairs: A as [k_pairs][12][2], B as [k_pairs][32][2].
#include <immintrin.h>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {
constexpr int kMr = 12;
constexpr int kNr = 32;

// a: [k_pairs][12][2] bf16; b: [k_pairs][32][2] bf16; c: [12, ldc] f32.
void tile_avx512bf16(int64_t k_pairs, const void* a_panel, const void* b_panel, float* c, int64_t ldc,
                     float alpha, bool accumulate) {
  // Fetch the C tile while the K loop runs; it is read and written only at the end.
  for (int i = 0; i < kMr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 31), _MM_HINT_T0);
  }
  const int32_t* a = static_cast<const int32_t*>(a_panel);  // one int32 = one bf16 pair
  const uint16_t* b = static_cast<const uint16_t*>(b_panel);
  __m512 acc[kMr][2];
  for (int i = 0; i < kMr; ++i) {
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < k_pairs; ++k) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(b + 32);
    for (int i = 0; i < kMr; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(a[i]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
    }
    a += kMr;
    b += 2 * kNr;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  for (int i = 0; i < kMr; ++i) {
    float* row = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(acc[i][0], va);
    __m512 r1 = _mm512_mul_ps(acc[i][1], va);
    if (accumulate) {
      r0 = _mm512_add_ps(r0, _mm512_loadu_ps(row));
      r1 = _mm512_add_ps(r1, _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, r0);
    _mm512_storeu_ps(row + 16, r1);
  }
}

const GemmMicroKernel kKernel = {"avx512bf16-12x32", kMr, kNr, 2, true, 512, 144, 4096, tile_avx512bf16};
}  // namespace

const GemmMicroKernel& gemm_kernel_avx512bf16() { return kKernel; }

}  // namespace peft::kernels::cpu
