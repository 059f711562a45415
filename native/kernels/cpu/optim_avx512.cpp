// AVX-512 loops of the fused optimizers: 16 floats per step (loops in optim_loops.h).
#include <immintrin.h>

#include "kernels/cpu/optim_loops.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

struct Avx512 {
  using F = __m512;
  static constexpr int kWidth = 16;
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F x) { _mm512_storeu_ps(p, x); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F sqrt(F a) { return _mm512_sqrt_ps(a); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  struct SquareSum {
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    void add(F x) {
      const __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
      const __m512d b = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
      lo = _mm512_fmadd_pd(a, a, lo);
      hi = _mm512_fmadd_pd(b, b, hi);
    }
    double total() const { return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi)); }
  };
};

using Loops = OptimVariant<Avx512>;
const OptimSpans kSpans = {"avx512", Loops::adamw, Loops::sgd, Loops::sum_squares, Loops::scale};
}  // namespace

const OptimSpans& optim_spans_avx512() { return kSpans; }

}  // namespace peft::kernels::cpu
