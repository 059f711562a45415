// AVX2+FMA loops of the fused optimizers (8 floats per step, scalar tail).
#include <immintrin.h>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

void adamw_avx2(float* p, const float* g, float* m, float* v, int64_t n, float decay, float beta1, float beta2,
                float step_size, float inv_sqrt_bc2, float eps) {
  const float omb1 = 1.0f - beta1, omb2 = 1.0f - beta2;
  const __m256 v_omb1 = _mm256_set1_ps(omb1), v_b2 = _mm256_set1_ps(beta2), v_omb2 = _mm256_set1_ps(omb2);
  const __m256 v_decay = _mm256_set1_ps(decay), v_step = _mm256_set1_ps(step_size);
  const __m256 v_ibc2 = _mm256_set1_ps(inv_sqrt_bc2), v_eps = _mm256_set1_ps(eps);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    __m256 mi = _mm256_loadu_ps(m + i);
    mi = _mm256_fmadd_ps(v_omb1, _mm256_sub_ps(gi, mi), mi);
    __m256 vi = _mm256_mul_ps(_mm256_loadu_ps(v + i), v_b2);
    vi = _mm256_fmadd_ps(_mm256_mul_ps(v_omb2, gi), gi, vi);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 denom = _mm256_fmadd_ps(_mm256_sqrt_ps(vi), v_ibc2, v_eps);
    const __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), v_decay);
    _mm256_storeu_ps(p + i, _mm256_fnmadd_ps(v_step, _mm256_div_ps(mi, denom), pi));
  }
  for (; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i] + omb1 * (gi - m[i]);
    const float vi = v[i] * beta2 + omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * (mi / (__builtin_sqrtf(vi) * inv_sqrt_bc2 + eps));
  }
}

void sgd_avx2(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float dampening,
              float weight_decay, bool nesterov, bool first_step) {
  const __m256 v_wd = _mm256_set1_ps(weight_decay), v_lr = _mm256_set1_ps(lr);
  const __m256 v_mom = _mm256_set1_ps(momentum), v_omd = _mm256_set1_ps(1.0f - dampening);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 pi = _mm256_loadu_ps(p + i);
    __m256 d = _mm256_fmadd_ps(v_wd, pi, _mm256_loadu_ps(g + i));
    if (buf != nullptr) {
      const __m256 b = first_step ? d : _mm256_fmadd_ps(v_mom, _mm256_loadu_ps(buf + i), _mm256_mul_ps(v_omd, d));
      _mm256_storeu_ps(buf + i, b);
      d = nesterov ? _mm256_fmadd_ps(v_mom, b, d) : b;
    }
    _mm256_storeu_ps(p + i, _mm256_fnmadd_ps(v_lr, d, pi));
  }
  for (; i < n; ++i) {
    float d = g[i] + weight_decay * p[i];
    if (buf != nullptr) {
      const float b = first_step ? d : momentum * buf[i] + (1.0f - dampening) * d;
      buf[i] = b;
      d = nesterov ? d + momentum * b : b;
    }
    p[i] -= lr * d;
  }
}

double sum_squares_avx2(const float* x, int64_t n) {
  // Four f64 accumulators: the norm of millions of values stays exact to f32 precision.
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(xv));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));
    acc0 = _mm256_fmadd_pd(lo, lo, acc0);
    acc1 = _mm256_fmadd_pd(hi, hi, acc1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  double total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

void scale_avx2(float* x, int64_t n, float factor) {
  const __m256 f = _mm256_set1_ps(factor);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), f));
  for (; i < n; ++i) x[i] *= factor;
}

const OptimSpans kSpans = {"avx2", adamw_avx2, sgd_avx2, sum_squares_avx2, scale_avx2};
}  // namespace

const OptimSpans& optim_spans_avx2() { return kSpans; }

}  // namespace peft::kernels::cpu
