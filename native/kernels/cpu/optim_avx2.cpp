// AVX2+FMA loops of the fused optimizers: 8 floats per step (loops in optim_loops.h).
#include <immintrin.h>

#include "kernels/cpu/optim_loops.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

struct Avx2 {
  using F = __m256;
  static constexpr int kWidth = 8;
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F x) { _mm256_storeu_ps(p, x); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F sqrt(F a) { return _mm256_sqrt_ps(a); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  struct SquareSum {
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    void add(F x) {
      const __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
      const __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
      lo = _mm256_fmadd_pd(a, a, lo);
      hi = _mm256_fmadd_pd(b, b, hi);
    }
    double total() const {
      alignas(32) double lanes[4];
      _mm256_store_pd(lanes, _mm256_add_pd(lo, hi));
      return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    }
  };
};

using Loops = OptimVariant<Avx2>;
const OptimSpans kSpans = {"avx2", Loops::adamw, Loops::sgd, Loops::sum_squares, Loops::scale};
}  // namespace

const OptimSpans& optim_spans_avx2() { return kSpans; }

}  // namespace peft::kernels::cpu
