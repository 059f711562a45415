// AVX-512 GEMM register tile: 12 rows x 32 columns held in 24 zmm accumulators, with the
// transposing packs and the in-place-A tile the driver uses for f32 operands (variants.h).
#include <immintrin.h>

#include "kernels/cpu/gemm_avx512_tile.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

// The register tile over k_steps: A's twelve values of step k come from `a` (a.at(i, k)), B's 32
// from the packed sliver b[k][32]; c: [12, ldc].
template <typename ARead>
[[gnu::always_inline]] inline void tile_body(int64_t k_steps, const ARead& a, const float* b, float* c, int64_t ldc,
                                             float alpha, bool accumulate) {
  prefetch_tile_12x32(c, ldc);
  Avx512Tile acc;
  zero_tile_12x32(acc);
  for (int64_t k = 0; k < k_steps; ++k) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    for (int i = 0; i < kAvx512Mr; ++i) {  // fully unrolled by the compiler: the row count is a constant
      const __m512 av = _mm512_set1_ps(*a.at(i, k));
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
    b += kAvx512Nr;
  }
  store_tile_12x32(acc, c, ldc, alpha, accumulate);
}

// A packed: [k_steps][12].
struct PackedA {
  const float* a;
  const float* at(int i, int64_t k) const { return a + k * kAvx512Mr + i; }
};
// A read where it lies: element (i, k) at a[i * row_stride + k * k_stride].
struct RowsA {
  const float* a;
  int64_t row_stride;
  int64_t k_stride;
  const float* at(int i, int64_t k) const { return a + i * row_stride + k * k_stride; }
};

// a: [k_steps][12] f32; b: [k_steps][32] f32; c: [12, ldc].
void tile_avx512(int64_t k_steps, const void* a_panel, const void* b_panel, float* c, int64_t ldc, float alpha,
                 bool accumulate) {
  tile_body(k_steps, PackedA{static_cast<const float*>(a_panel)}, static_cast<const float*>(b_panel), c, ldc, alpha,
            accumulate);
}

// The same with twelve rows of A read in place: for a product one column sliver wide (N <= 32, LoRA's
// rank-r products) every A value is used once, so packing A would cost as much as the product.
void tile_a_direct_avx512(int64_t k_steps, const float* a, int64_t row_stride, int64_t k_stride, const void* b_panel,
                          float* c, int64_t ldc, float alpha, bool accumulate) {
  tile_body(k_steps, RowsA{a, row_stride, k_stride}, static_cast<const float*>(b_panel), c, ldc, alpha, accumulate);
}

// Columns of the 16 x 16 block r (rows of 16 floats) become its rows: r[j] = (r0[j], ..., r15[j]).
inline void transpose16x16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {  // per 128-bit lane: interleave row pairs
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4q + j], lane l: column 4l + j of rows 4q .. 4q+3.
  for (int q = 0; q < 4; ++q) {
    const __m512* p = t + 4 * q;
    u[4 * q + 0] = _mm512_shuffle_ps(p[0], p[2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * q + 1] = _mm512_shuffle_ps(p[0], p[2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * q + 2] = _mm512_shuffle_ps(p[1], p[3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * q + 3] = _mm512_shuffle_ps(p[1], p[3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // Gather lane l of u[j], u[4 + j], u[8 + j], u[12 + j] into column 4l + j.
  for (int j = 0; j < 4; ++j) {
    const __m512 w0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88), w1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 x0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88), x1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_f32x4(w0, x0, 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(w0, x0, 0xDD);
    r[4 + j] = _mm512_shuffle_f32x4(w1, x1, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(w1, x1, 0xDD);
  }
}

// src: 32 rows of kc floats, row stride row_stride; out: [kc][32] (64-byte aligned sliver). Blocks
// of 16 rows x 16 K are transposed in registers; the generic loop stored one float at a time.
void pack_b_rows_avx512(const float* src, int64_t row_stride, int64_t kc, float* out) {
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    for (int half = 0; half < 2; ++half) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + (half * 16 + i) * row_stride + k);
      transpose16x16(r);
      for (int j = 0; j < 16; ++j) _mm512_store_ps(out + (k + j) * kAvx512Nr + half * 16, r[j]);
    }
  }
  for (; k < kc; ++k)
    for (int i = 0; i < kAvx512Nr; ++i) out[k * kAvx512Nr + i] = src[i * row_stride + k];
}

// src: 12 rows of kc floats; out: [kc][12]. The 16 x 16 transposes run on the 12 rows and 4 of
// zeros; each output row is a masked store of 12 floats, so nothing is written past it.
void pack_a_rows_avx512(const float* src, int64_t row_stride, int64_t kc, float* out) {
  int64_t k = 0;
  const __mmask16 twelve = 0x0FFF;
  for (; k + 16 <= kc; k += 16) {
    __m512 r[16];
    for (int i = 0; i < kAvx512Mr; ++i) r[i] = _mm512_loadu_ps(src + i * row_stride + k);
    for (int i = kAvx512Mr; i < 16; ++i) r[i] = _mm512_setzero_ps();
    transpose16x16(r);
    for (int j = 0; j < 16; ++j) _mm512_mask_storeu_ps(out + (k + j) * kAvx512Mr, twelve, r[j]);
  }
  for (; k < kc; ++k)
    for (int i = 0; i < kAvx512Mr; ++i) out[k * kAvx512Mr + i] = src[i * row_stride + k];
}

const GemmMicroKernel kKernel = {"avx512-12x32", kAvx512Mr, kAvx512Nr, 1, false, 576, 144, 2048, tile_avx512,
                                 pack_b_rows_avx512, pack_a_rows_avx512, tile_a_direct_avx512};
}  // namespace

const GemmMicroKernel& gemm_kernel_avx512() { return kKernel; }

}  // namespace peft::kernels::cpu
