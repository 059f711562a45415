// Scalar loops of the transformer layers: the reference for the vector variants. Reductions are
// accumulated in f64 so that these are the most accurate of the variants.
#include <cmath>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

float rmsnorm_row(const float* x, const float* w, float eps, float* y, int64_t n) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float rstd = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * rstd) * w[i];
  return rstd;
}

void rmsnorm_row_backward(const float* dy, const float* x, const float* w, float rstd, float* dx, int64_t n) {
  double dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(w[i]) * dy[i] * x[i];
  const float c = static_cast<float>(dot / static_cast<double>(n) * rstd * rstd * rstd);
  for (int64_t i = 0; i < n; ++i) dx[i] = rstd * (w[i] * dy[i]) - x[i] * c;
}

void scaled_product_add(float* acc, const float* a, const float* b, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += s * a[i] * b[i];
}

float sigmoid(float g) { return 1.0f / (1.0f + std::exp(-g)); }

void swiglu(const float* gate, const float* up, float* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void swiglu_backward(const float* dh, const float* gate, const float* up, float* d_gate, float* d_up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], s = sigmoid(g), d = dh[i];
    d_gate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
    d_up[i] = d * g * s;  // after d_gate: d_up may alias dh, d_gate too
  }
}

float max_of(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

double sum_exp(const float* x, float shift, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i] - shift));
  return s;
}

void scaled_exp(const float* x, float shift, float scale, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(std::exp(static_cast<double>(x[i] - shift)) * scale);
}

const LayerSpans kSpans = {"scalar", rmsnorm_row, rmsnorm_row_backward, scaled_product_add, swiglu,
                           swiglu_backward, max_of, sum_exp, scaled_exp};
}  // namespace

const LayerSpans& layer_spans_scalar() { return kSpans; }

}  // namespace peft::kernels::cpu
