// AVX2+FMA loops of the transformer layers (RMSNorm, SwiGLU, softmax): 8 floats per step, scalar
// tails. exp is a Cephes-style polynomial (about 1 ulp); reductions of long rows are kept in f64
// lanes where the scalar reference does so (Σ exp), and in 8 f32 lanes for Σx² over one row.
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {
// A name of their own: the build test tells variants apart from common code by symbol name.
namespace avx2 {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline double hsum_pd(__m256d v) {
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, v);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

// exp(x) for x in f32; below −87.3 the result is 0, above 88.3 it saturates at e^88.3.
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.3f);
  const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
}

inline __m256 sigmoid8(__m256 g) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

inline float sigmoid1(float g) { return 1.0f / (1.0f + expf(-g)); }

float rmsnorm_row(const float* x, const float* w, float eps, float* y, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  double ss = hsum(acc);
  for (; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float rstd = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(n) + eps));
  const __m256 r = _mm256_set1_ps(rstd);
  for (i = 0; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), r), _mm256_loadu_ps(w + i)));
  }
  for (; i < n; ++i) y[i] = (x[i] * rstd) * w[i];
  return rstd;
}

void rmsnorm_row_backward(const float* dy, const float* x, const float* w, float rstd, float* dx, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 wd = _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(dy + i));
    acc = _mm256_fmadd_ps(wd, _mm256_loadu_ps(x + i), acc);
  }
  double dot = hsum(acc);
  for (; i < n; ++i) dot += static_cast<double>(w[i]) * dy[i] * x[i];
  const float c = static_cast<float>(dot / static_cast<double>(n) * rstd * rstd * rstd);
  const __m256 r = _mm256_set1_ps(rstd), cv = _mm256_set1_ps(c);
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 wd = _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(dy + i));
    _mm256_storeu_ps(dx + i, _mm256_fnmadd_ps(_mm256_loadu_ps(x + i), cv, _mm256_mul_ps(r, wd)));
  }
  for (; i < n; ++i) dx[i] = rstd * (w[i] * dy[i]) - x[i] * c;
}

void scaled_product_add(float* acc, const float* a, const float* b, float s, int64_t n) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 p = _mm256_mul_ps(_mm256_mul_ps(sv, _mm256_loadu_ps(a + i)), _mm256_loadu_ps(b + i));
    _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), p));
  }
  for (; i < n; ++i) acc[i] += s * a[i] * b[i];
}

void swiglu(const float* gate, const float* up, float* h, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) h[i] = gate[i] * sigmoid1(gate[i]) * up[i];
}

void swiglu_backward(const float* dh, const float* gate, const float* up, float* d_gate, float* d_up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i), d = _mm256_loadu_ps(dh + i), u = _mm256_loadu_ps(up + i);
    const __m256 s = sigmoid8(g);
    const __m256 ds = _mm256_fmadd_ps(g, _mm256_sub_ps(one, s), one);  // 1 + g·(1 − s)
    _mm256_storeu_ps(d_gate + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, u), s), ds));
    _mm256_storeu_ps(d_up + i, _mm256_mul_ps(_mm256_mul_ps(d, g), s));
  }
  for (; i < n; ++i) {
    const float g = gate[i], s = sigmoid1(g), d = dh[i];
    d_gate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
    d_up[i] = d * g * s;
  }
}

float max_of(const float* x, int64_t n) {
  int64_t i = 0;
  float m = x[0];
  if (n >= 8) {
    __m256 mv = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, mv);
    for (int l = 0; l < 8; ++l) m = lanes[l] > m ? lanes[l] : m;
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

double sum_exp(const float* x, float shift, int64_t n) {
  const __m256 sh = _mm256_set1_ps(shift);
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  double s = hsum_pd(_mm256_add_pd(lo, hi));
  for (; i < n; ++i) s += exp(static_cast<double>(x[i] - shift));
  return s;
}

void scaled_exp(const float* x, float shift, float scale, float* out, int64_t n) {
  const __m256 sh = _mm256_set1_ps(shift), sc = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh)), sc));
  for (; i < n; ++i) out[i] = static_cast<float>(exp(static_cast<double>(x[i] - shift)) * scale);
}

}  // namespace avx2

using namespace avx2;
const LayerSpans kSpans = {"avx2", rmsnorm_row, rmsnorm_row_backward, scaled_product_add, swiglu,
                           swiglu_backward, max_of, sum_exp, scaled_exp};
}  // namespace

const LayerSpans& layer_spans_avx2() { return kSpans; }

}  // namespace peft::kernels::cpu
