// Scalar loops of the fused optimizers: the reference for the vector variants, one element at a
// time with the same per-element step (optim_loops.h) in PyTorch's operation order.
#include "kernels/cpu/optim_loops.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t n, float decay, float beta1, float beta2,
                  float step_size, float inv_sqrt_bc2, float eps) {
  const AdamWConsts c{decay, beta1, beta2, step_size, inv_sqrt_bc2, eps};
  for (int64_t i = 0; i < n; ++i) adamw_element(p, g, m, v, i, c);
}

void sgd_scalar(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float dampening,
                float weight_decay, bool nesterov, bool first_step) {
  const SgdConsts c{lr, momentum, dampening, weight_decay, nesterov, first_step};
  for (int64_t i = 0; i < n; ++i) sgd_element(p, g, buf, i, c);
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
