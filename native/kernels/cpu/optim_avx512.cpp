// AVX-512 loops of the fused optimizers (16 floats per step, scalar tail).
#include <immintrin.h>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t n, float decay, float beta1, float beta2,
                float step_size, float inv_sqrt_bc2, float eps) {
  const float omb1 = 1.0f - beta1, omb2 = 1.0f - beta2;
  const __m512 v_omb1 = _mm512_set1_ps(omb1), v_b2 = _mm512_set1_ps(beta2), v_omb2 = _mm512_set1_ps(omb2);
  const __m512 v_decay = _mm512_set1_ps(decay), v_step = _mm512_set1_ps(step_size);
  const __m512 v_ibc2 = _mm512_set1_ps(inv_sqrt_bc2), v_eps = _mm512_set1_ps(eps);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gi = _mm512_loadu_ps(g + i);
    __m512 mi = _mm512_loadu_ps(m + i);
    mi = _mm512_fmadd_ps(v_omb1, _mm512_sub_ps(gi, mi), mi);
    __m512 vi = _mm512_mul_ps(_mm512_loadu_ps(v + i), v_b2);
    vi = _mm512_fmadd_ps(_mm512_mul_ps(v_omb2, gi), gi, vi);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    const __m512 denom = _mm512_fmadd_ps(_mm512_sqrt_ps(vi), v_ibc2, v_eps);
    const __m512 pi = _mm512_mul_ps(_mm512_loadu_ps(p + i), v_decay);
    _mm512_storeu_ps(p + i, _mm512_fnmadd_ps(v_step, _mm512_div_ps(mi, denom), pi));
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

void sgd_avx512(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float dampening,
              float weight_decay, bool nesterov, bool first_step) {
  const __m512 v_wd = _mm512_set1_ps(weight_decay), v_lr = _mm512_set1_ps(lr);
  const __m512 v_mom = _mm512_set1_ps(momentum), v_omd = _mm512_set1_ps(1.0f - dampening);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 pi = _mm512_loadu_ps(p + i);
    __m512 d = _mm512_fmadd_ps(v_wd, pi, _mm512_loadu_ps(g + i));
    if (buf != nullptr) {
      const __m512 b = first_step ? d : _mm512_fmadd_ps(v_mom, _mm512_loadu_ps(buf + i), _mm512_mul_ps(v_omd, d));
      _mm512_storeu_ps(buf + i, b);
      d = nesterov ? _mm512_fmadd_ps(v_mom, b, d) : b;
    }
    _mm512_storeu_ps(p + i, _mm512_fnmadd_ps(v_lr, d, pi));
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

double sum_squares_avx512(const float* x, int64_t n) {
  __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(xv));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1)));
    acc0 = _mm512_fmadd_pd(lo, lo, acc0);
    acc1 = _mm512_fmadd_pd(hi, hi, acc1);
  }
  double total = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
  for (; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

void scale_avx512(float* x, int64_t n, float factor) {
  const __m512 f = _mm512_set1_ps(factor);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), f));
  for (; i < n; ++i) x[i] *= factor;
}

const OptimSpans kSpans = {"avx512", adamw_avx512, sgd_avx512, sum_squares_avx512, scale_avx512};
}  // namespace

const OptimSpans& optim_spans_avx512() { return kSpans; }

}  // namespace peft::kernels::cpu
