// Scalar loops of the fused optimizers: the reference for the vector variants, written in the
// same operation order as PyTorch's single-tensor implementations.
#include <cmath>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t n, float decay, float beta1, float beta2,
                  float step_size, float inv_sqrt_bc2, float eps) {
  const float one_minus_beta1 = 1.0f - beta1;
  const float one_minus_beta2 = 1.0f - beta2;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i] + one_minus_beta1 * (gi - m[i]);
    const float vi = v[i] * beta2 + one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) * inv_sqrt_bc2 + eps;
    p[i] = p[i] * decay - step_size * (mi / denom);
  }
}

void sgd_scalar(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float dampening,
                float weight_decay, bool nesterov, bool first_step) {
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i] + weight_decay * p[i];
    if (buf != nullptr) {
      const float b = first_step ? d : momentum * buf[i] + (1.0f - dampening) * d;
      buf[i] = b;
      d = nesterov ? d + momentum * b : b;
    }
    p[i] -= lr * d;
  }
}

double sum_squares_scalar(const float* x, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * x[i];
  return total;
}

void scale_scalar(float* x, int64_t n, float factor) {
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

const OptimSpans kSpans = {"scalar", adamw_scalar, sgd_scalar, sum_squares_scalar, scale_scalar};
}  // namespace

const OptimSpans& optim_spans_scalar() { return kSpans; }

}  // namespace peft::kernels::cpu
