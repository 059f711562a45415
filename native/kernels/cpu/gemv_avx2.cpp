// AVX2+FMA loops of the small-M GEMM path: 8 floats per FMA (loops in gemv_loops.h). bf16 weights
// widen by zero-extending to 32 bits and shifting left 16; edges use masked loads and stores.
#include <immintrin.h>

#include "kernels/cpu/gemv_loops.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

struct Avx2 {
  using F = __m256;
  static constexpr int kWidth = 8;
  // Lanes [0, r) set: the mask of a partial vector (0 < r < 8).
  static __m256i first(int r) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F load_part(const float* p, int r) { return _mm256_maskload_ps(p, first(r)); }
  static F widen(__m128i bf16) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bf16), 16)); }
  static F load_bf16(const uint16_t* p) { return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static F load_part_bf16(const uint16_t* p, int r) {
    // AVX2 has no 16-bit masked load: gather the r values through a zeroed buffer.
    alignas(16) uint16_t lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int l = 0; l < r; ++l) lanes[l] = p[l];
    return widen(_mm_load_si128(reinterpret_cast<const __m128i*>(lanes)));
  }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void store_part(float* p, F v, int r) { _mm256_maskstore_ps(p, first(r), v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

using Loops = GemvVariant<Avx2>;
const GemvSpans kSpans = {"avx2", Loops::dot_f32, Loops::dot_bf16, Loops::axpy_f32, Loops::axpy_bf16};
}  // namespace

const GemvSpans& gemv_spans_avx2() { return kSpans; }

}  // namespace peft::kernels::cpu
