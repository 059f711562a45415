// AVX-512 GEMM register tile: 12 rows x 32 columns held in 24 zmm accumulators.
#include <immintrin.h>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {
constexpr int kMr = 12;
constexpr int kNr = 32;

// a: [k_steps][12] f32; b: [k_steps][32] f32; c: [12, ldc].
void tile_avx512(int64_t k_steps, const void* a_panel, const void* b_panel, float* c, int64_t ldc, float alpha,
                 bool accumulate) {
  // Fetch the C tile while the K loop runs; it is read and written only at the end.
  for (int i = 0; i < kMr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 31), _MM_HINT_T0);
  }
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  __m512 acc[kMr][2];
  for (int i = 0; i < kMr; ++i) {
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < k_steps; ++k) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    for (int i = 0; i < kMr; ++i) {  // fully unrolled by the compiler: kMr is a constant
      const __m512 av = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
    a += kMr;
    b += kNr;
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

const GemmMicroKernel kKernel = {"avx512-12x32", kMr, kNr, 1, false, 256, 144, 4096, tile_avx512};
}  // namespace

const GemmMicroKernel& gemm_kernel_avx512() { return kKernel; }

}  // namespace peft::kernels::cpu
