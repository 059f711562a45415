// Shared pieces of the two AVX-512 register tiles (12 rows x 32 columns, two zmm per row), for the
// f32 and the bf16 kernels. Included only by AVX-512 variant files; the anonymous namespace gives
// each its own copy compiled with its own flags.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace peft::kernels::cpu {
namespace {

constexpr int kAvx512Mr = 12;
constexpr int kAvx512Nr = 32;

using Avx512Tile = __m512[kAvx512Mr][2];

// Fetches the C tile while the K loop runs; it is read and written only at the end.
[[gnu::always_inline]] inline void prefetch_tile_12x32(const float* c, int64_t ldc) {
  for (int i = 0; i < kAvx512Mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 31), _MM_HINT_T0);
  }
}

[[gnu::always_inline]] inline void zero_tile_12x32(Avx512Tile& acc) {
  for (int i = 0; i < kAvx512Mr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
}

// c[12, 32] = alpha · acc (+ c when accumulate).
[[gnu::always_inline]] inline void store_tile_12x32(const Avx512Tile& acc, float* c, int64_t ldc, float alpha, bool accumulate) {
  const __m512 va = _mm512_set1_ps(alpha);
  for (int i = 0; i < kAvx512Mr; ++i) {
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

}  // namespace
}  // namespace peft::kernels::cpu
