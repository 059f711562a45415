// AVX-512 loops of the small-M GEMM path: 16 floats per FMA (loops in gemv_loops.h). bf16 weights
// widen by zero-extending to 32 bits and shifting left 16; edges use mask registers.
#include <immintrin.h>

#include "kernels/cpu/gemv_loops.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

struct Avx512 {
  using F = __m512;
  static constexpr int kWidth = 16;
  static __mmask16 first(int r) { return static_cast<__mmask16>((1u << r) - 1u); }  // lanes [0, r), 0 < r < 16
  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F load_part(const float* p, int r) { return _mm512_maskz_loadu_ps(first(r), p); }
  static F widen(__m256i bf16) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16), 16)); }
  static F load_bf16(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static F load_part_bf16(const uint16_t* p, int r) { return widen(_mm256_maskz_loadu_epi16(first(r), p)); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void store_part(float* p, F v, int r) { _mm512_mask_storeu_ps(p, first(r), v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsum(F v) { return _mm512_reduce_add_ps(v); }
};

using Loops = GemvVariant<Avx512>;
const GemvSpans kSpans = {"avx512", Loops::dot_f32, Loops::dot_bf16, Loops::axpy_f32, Loops::axpy_bf16};
}  // namespace

const GemvSpans& gemv_spans_avx512() { return kSpans; }

}  // namespace peft::kernels::cpu
