// AVX2+FMA GEMM register tile: 6 rows x 16 columns held in 12 ymm accumulators.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {
constexpr int kMr = 6;
constexpr int kNr = 16;

// The register tile over k_steps: A's six values of step k come from `a` (a.at(i, k)), B's 16 from
// the packed sliver b[k][16]; c: [6, ldc].
template <typename ARead>
inline void tile_body(int64_t k_steps, const ARead& a, const float* b, float* c, int64_t ldc, float alpha,
                      bool accumulate) {
  // Fetch the C tile while the K loop runs; it is read and written only at the end.
  for (int i = 0; i < kMr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  // Unrolled: 4096³ ran 2% faster with the loop's counter and pointer updates spread over 4 steps.
#pragma GCC unroll 4
  for (int64_t k = 0; k < k_steps; ++k) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a.at(0, k));
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a.at(1, k));
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a.at(2, k));
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a.at(3, k));
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a.at(4, k));
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a.at(5, k));
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
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

// A packed: [k_steps][6].
struct PackedA {
  const float* a;
  const float* at(int i, int64_t k) const { return a + k * kMr + i; }
};
// A read where it lies: element (i, k) at a[i * row_stride + k * k_stride].
struct RowsA {
  const float* r0;
  const float* r1;
  const float* r2;
  const float* r3;
  const float* r4;
  const float* r5;
  int64_t k_stride;
  const float* at(int i, int64_t k) const {
    const float* rows[kMr] = {r0, r1, r2, r3, r4, r5};
    return rows[i] + k * k_stride;
  }
};

// a: [k_steps][6] f32; b: [k_steps][16] f32; c: [6, ldc].
void tile_avx2(int64_t k_steps, const void* a_panel, const void* b_panel, float* c, int64_t ldc, float alpha,
               bool accumulate) {
  tile_body(k_steps, PackedA{static_cast<const float*>(a_panel)}, static_cast<const float*>(b_panel), c, ldc, alpha,
            accumulate);
}

// The same with six rows of A read in place (a[i * row_stride + k * k_stride]): for a product with
// one column sliver (N <= 16, LoRA's rank-r products) every A value is used once, so packing A would
// cost as much as the product.
void tile_a_direct_avx2(int64_t k_steps, const float* a, int64_t row_stride, int64_t k_stride, const void* b_panel,
                        float* c, int64_t ldc, float alpha, bool accumulate) {
  const RowsA rows{a, a + row_stride, a + 2 * row_stride, a + 3 * row_stride, a + 4 * row_stride, a + 5 * row_stride,
                   k_stride};
  tile_body(k_steps, rows, static_cast<const float*>(b_panel), c, ldc, alpha, accumulate);
}

// Columns of the 8 x 8 block r (rows of 8 floats) become its rows: r[j] = (r0[j], ..., r7[j]).
inline void transpose8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  // s0: columns 0 and 4 of rows 0-3; s1: columns 1 and 5; s2: 2 and 6; s3: 3 and 7 (s4-s7: rows 4-7).
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// src: 16 rows of kc floats, row stride row_stride; out: [kc][16] (64-byte aligned sliver). Blocks of
// 8 rows x 8 K are transposed in registers; the generic loop stored one float per cycle at best.
void pack_b_rows_avx2(const float* src, int64_t row_stride, int64_t kc, float* out) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    for (int half = 0; half < 2; ++half) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + (half * 8 + i) * row_stride + k);
      transpose8x8(r);
      for (int j = 0; j < 8; ++j) _mm256_store_ps(out + (k + j) * kNr + half * 8, r[j]);
    }
  }
  for (; k < kc; ++k)
    for (int i = 0; i < kNr; ++i) out[k * kNr + i] = src[i * row_stride + k];
}

// src: 6 rows of kc floats; out: [kc][6]. The 8 x 8 transposes run on the 6 rows and 2 of zeros; each
// output row is stored as 4 + 2 floats so nothing is written past it.
void pack_a_rows_avx2(const float* src, int64_t row_stride, int64_t kc, float* out) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8];
    for (int i = 0; i < kMr; ++i) r[i] = _mm256_loadu_ps(src + i * row_stride + k);
    for (int i = kMr; i < 8; ++i) r[i] = _mm256_setzero_ps();
    transpose8x8(r);
    for (int j = 0; j < 8; ++j) {
      float* dst = out + (k + j) * kMr;
      _mm_storeu_ps(dst, _mm256_castps256_ps128(r[j]));
      _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), _mm256_extractf128_ps(r[j], 1));
    }
  }
  for (; k < kc; ++k)
    for (int i = 0; i < kMr; ++i) out[k * kMr + i] = src[i * row_stride + k];
}

// Four K rows of one sliver, six floats each (lanes 0-5 of r[0..3]), as 24 contiguous floats at dst.
inline void store_four_rows_of_six(const __m256 r[4], float* dst) {
  const __m256i r1_to_6 = _mm256_setr_epi32(0, 0, 0, 0, 0, 0, 0, 1);  // r1[0..1] into lanes 6-7
  const __m256i r1_rest = _mm256_setr_epi32(2, 3, 4, 5, 0, 0, 0, 0);  // r1[2..5] into lanes 0-3
  const __m256i r2_to_4 = _mm256_setr_epi32(0, 0, 0, 0, 0, 1, 2, 3);  // r2[0..3] into lanes 4-7
  const __m256i r2_rest = _mm256_setr_epi32(4, 5, 0, 0, 0, 0, 0, 0);  // r2[4..5] into lanes 0-1
  const __m256i r3_to_2 = _mm256_setr_epi32(0, 0, 0, 1, 2, 3, 4, 5);  // r3[0..5] into lanes 2-7
  _mm256_storeu_ps(dst, _mm256_blend_ps(r[0], _mm256_permutevar8x32_ps(r[1], r1_to_6), 0xC0));
  _mm256_storeu_ps(dst + 8, _mm256_blend_ps(_mm256_permutevar8x32_ps(r[1], r1_rest), _mm256_permutevar8x32_ps(r[2], r2_to_4), 0xF0));
  _mm256_storeu_ps(dst + 16, _mm256_blend_ps(_mm256_permutevar8x32_ps(r[2], r2_rest), _mm256_permutevar8x32_ps(r[3], r3_to_2), 0xFC));
}

constexpr int64_t kOuterRows = 8;  // K rows per block: 8 x 6 floats is three whole cache lines of a sliver

// src: element (i, k) at src[k * ld + i], slivers * 6 columns; out: sliver s at out + s * sliver_stride,
// [kc][6]. Eight K rows at a time, sliver by sliver: each sliver gets 192 contiguous bytes (three
// whole lines) instead of 24 bytes from each row in turn, and the rows are merged in registers; the
// six-float copies cost dW = dyᵀ·x (576 x 576 x 2048) twice as much as packing its 16-wide B.
void pack_a_outer_avx2(const float* src, int64_t ld, int64_t slivers, int64_t kc, int64_t sliver_stride,
                       float* out) {
  const int64_t width = slivers * kMr;
  const __m256i first_six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  int64_t k = 0;
  for (; k + kOuterRows <= kc; k += kOuterRows) {
    // The next block's rows: short runs a long stride apart, which the hardware prefetchers follow late.
    for (int64_t j = k + kOuterRows; j < std::min<int64_t>(kc, k + 2 * kOuterRows); ++j) {
      const float* ahead = src + j * ld;
      for (int64_t i = 0; i < width; i += 16) _mm_prefetch(reinterpret_cast<const char*>(ahead + i), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(ahead + width - 1), _MM_HINT_T0);
    }
    const float* rows = src + k * ld;
    for (int64_t s = 0; s < slivers; ++s) {
      // Eight-float loads read two floats past the sliver: of the next sliver, except for the last,
      // which may end the buffer and loads its six under a mask.
      const bool last = s + 1 == slivers;
      __m256 r[kOuterRows];
      for (int j = 0; j < kOuterRows; ++j) {
        const float* p = rows + j * ld + s * kMr;
        r[j] = last ? _mm256_maskload_ps(p, first_six) : _mm256_loadu_ps(p);
      }
      float* dst = out + s * sliver_stride + k * kMr;
      store_four_rows_of_six(r, dst);
      store_four_rows_of_six(r + 4, dst + 4 * kMr);
    }
  }
  for (; k < kc; ++k)
    for (int64_t s = 0; s < slivers; ++s) std::memcpy(out + s * sliver_stride + k * kMr, src + k * ld + s * kMr, sizeof(float) * kMr);
}

const GemmMicroKernel kKernel = {"avx2-6x16", kMr, kNr, 1, false, 256, 144, 4096, tile_avx2, pack_b_rows_avx2,
                                 pack_a_rows_avx2, tile_a_direct_avx2, pack_a_outer_avx2};
}  // namespace

const GemmMicroKernel& gemm_kernel_avx2() { return kKernel; }

}  // namespace peft::kernels::cpu
