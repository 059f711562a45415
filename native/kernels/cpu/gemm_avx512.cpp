// AVX-512 GEMM register tile: 12 rows x 32 columns held in 24 zmm accumulators.
#include <immintrin.h>

#include "kernels/cpu/gemm_avx512_tile.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

// a: [k_steps][12] f32; b: [k_steps][32] f32; c: [12, ldc].
void tile_avx512(int64_t k_steps, const void* a_panel, const void* b_panel, float* c, int64_t ldc, float alpha,
                 bool accumulate) {
  prefetch_tile_12x32(c, ldc);
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  Avx512Tile acc;
  zero_tile_12x32(acc);
  for (int64_t k = 0; k < k_steps; ++k) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    for (int i = 0; i < kAvx512Mr; ++i) {  // fully unrolled by the compiler: the row count is a constant
      const __m512 av = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
    a += kAvx512Mr;
    b += kAvx512Nr;
  }
  store_tile_12x32(acc, c, ldc, alpha, accumulate);
}

const GemmMicroKernel kKernel = {"avx512-12x32", kAvx512Mr, kAvx512Nr, 1, false, 256, 144, 4096, tile_avx512};
}  // namespace

const GemmMicroKernel& gemm_kernel_avx512() { return kKernel; }

}  // namespace peft::kernels::cpu
