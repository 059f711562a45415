#include "nn/norm.h"

#include "core/error.h"
#include "kernels/norm.h"

namespace peft::nn {

Norm::Norm(NormKind kind, ParamPtr weight, ParamPtr bias, float eps, bool unit_offset)
    : kind_(kind), weight_(std::move(weight)), bias_(std::move(bias)), eps_(eps), unit_offset_(unit_offset) {
  PEFT_CHECK(weight_ != nullptr, ErrorCode::Argument, "A norm needs a weight");
}

const float* Norm::effective_weight(std::unique_ptr<float[]>& scratch) const {
  if (!unit_offset_) return weight_->data();
  const int64_t n = dim();
  scratch.reset(new float[static_cast<size_t>(n)]);
  for (int64_t i = 0; i < n; ++i) scratch[i] = 1.0f + weight_->data()[i];
  return scratch.get();
}

void Norm::forward(const kernels::Context& ctx, int64_t m, const float* x, float* y, NormCache& cache) const {
  const int64_t d = dim();
  std::unique_ptr<float[]> scratch;
  const float* w = effective_weight(scratch);
  cache.rstd = f32(ctx, {m});
  if (kind_ == NormKind::Rms) {
    ctx.rmsnorm_forward(m, d, x, w, eps_, y, p(cache.rstd));
    return;
  }
  cache.mean = f32(ctx, {m});
  ctx.layernorm_forward(m, d, x, w, bias_ ? bias_->data() : nullptr, eps_, y, p(cache.mean), p(cache.rstd));
}

void Norm::backward(const kernels::Context& ctx, int64_t m, const float* dy, const float* x, const NormCache& cache, float* dx) const {
  const int64_t d = dim();
  std::unique_ptr<float[]> scratch;
  const float* w = effective_weight(scratch);
  // The offset is a constant, so the gradient of w is the gradient of 1 + w.
  if (kind_ == NormKind::Rms) {
    ctx.rmsnorm_backward(m, d, dy, x, w, p(cache.rstd), dx, weight_->grad_data(), true);
    return;
  }
  ctx.layernorm_backward(m, d, dy, x, w, p(cache.mean), p(cache.rstd), dx, weight_->grad_data(),
                              bias_ ? bias_->grad_data() : nullptr, true);
}

}  // namespace peft::nn
