// AVX2+FMA GEMM register tile: 6 rows x 16 columns held in 12 ymm accumulators.
#include <immintrin.h>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {
constexpr int kMr = 6;
constexpr int kNr = 16;

// a: [k_steps][6] f32; b: [k_steps][16] f32; c: [6, ldc].
void tile_avx2(int64_t k_steps, const void* a_panel, const void* b_panel, float* c, int64_t ldc, float alpha,
               bool accumulate) {
  // Fetch the C tile while the K loop runs; it is read and written only at the end.
  for (int i = 0; i < kMr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < k_steps; ++k) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += kMr;
    b += kNr;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  __m256 rows[kMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < kMr; ++i) {
    float* row = c + i * ldc;
    __m256 r0 = _mm256_mul_ps(rows[i][0], va);
    __m256 r1 = _mm256_mul_ps(rows[i][1], va);
    if (accumulate) {
      r0 = _mm256_add_ps(r0, _mm256_loadu_ps(row));
      r1 = _mm256_add_ps(r1, _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, r0);
    _mm256_storeu_ps(row + 8, r1);
  }
}

const GemmMicroKernel kKernel = {"avx2-6x16", kMr, kNr, 1, false, 256, 144, 4096, tile_avx2};
}  // namespace

const GemmMicroKernel& gemm_kernel_avx2() { return kKernel; }

}  // namespace peft::kernels::cpu
