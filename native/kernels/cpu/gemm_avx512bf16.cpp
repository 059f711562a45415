// AVX-512-BF16 GEMM register tile for bf16 operands: 12 rows x 32 columns, f32 accumulators.
// vdpbf16ps multiplies pairs of bf16 values along K and adds both products into one f32 lane,
// so panels hold K in pairs: A as [k_pairs][12][2], B as [k_pairs][32][2].
#include <immintrin.h>

#include "kernels/cpu/gemm_avx512_tile.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

// a: [k_pairs][12][2] bf16; b: [k_pairs][32][2] bf16; c: [12, ldc] f32.
void tile_avx512bf16(int64_t k_pairs, const void* a_panel, const void* b_panel, float* c, int64_t ldc,
                     float alpha, bool accumulate) {
  prefetch_tile_12x32(c, ldc);
  const int32_t* a = static_cast<const int32_t*>(a_panel);  // one int32 = one bf16 pair
  const uint16_t* b = static_cast<const uint16_t*>(b_panel);
  Avx512Tile acc;
  zero_tile_12x32(acc);
  for (int64_t k = 0; k < k_pairs; ++k) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(b + 32);
    for (int i = 0; i < kAvx512Mr; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(a[i]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
    }
    a += kAvx512Mr;
    b += 2 * kAvx512Nr;
  }
  store_tile_12x32(acc, c, ldc, alpha, accumulate);
}

const GemmMicroKernel kKernel = {"avx512bf16-12x32", kAvx512Mr, kAvx512Nr, 2, true, 512, 144, 4096,
                                 tile_avx512bf16};
}  // namespace

const GemmMicroKernel& gemm_kernel_avx512bf16() { return kKernel; }

}  // namespace peft::kernels::cpu
