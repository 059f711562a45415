// The base weight's products and storage for Linear: a dense W (f32 / bf16) goes through the GEMM,
// a 4-bit or ggml-block W through the panel-by-panel products; merging reads and writes W as f32 values.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/convert.h"
#include "kernels/gemm.h"
#include "kernels/nf4.h"
#include "nn/linear.h"
#include "nn/linear_math.h"

namespace peft::nn {

void Linear::base_product(const kernels::Context& ctx, int64_t m, const float* x, float* y, bool accumulate, int64_t ldy) const {
  if (const QuantWeight* q = quant()) {
    if (q->ggml()) ctx.ggml_matmul(m, matrix(x, in_, false), q->ggml_view(), y, ldy, 1.0f, accumulate, q->compute_dtype);
    else ctx.quant4_matmul(m, out_, in_, matrix(x, in_, false), q->view(), y, ldy, 1.0f, accumulate, q->compute_dtype);
    return;
  }
  ctx.gemm(m, out_, in_, matrix(x, in_, false), matrix(*weight_->value, true), y, ldy, 1.0f, accumulate);
}

void Linear::base_product_dx(const kernels::Context& ctx, int64_t m, const float* dy, float* dx, bool accumulate, int64_t ldy) const {
  if (const QuantWeight* q = quant()) {
    PEFT_CHECK(ldy == out_, ErrorCode::Internal, "A 4-bit product's dy has no row stride");
    if (q->ggml()) ctx.ggml_matmul_dx(m, dy, q->ggml_view(), dx, 1.0f, accumulate, q->compute_dtype);
    else ctx.quant4_matmul_dx(m, out_, in_, dy, q->view(), dx, 1.0f, accumulate, q->compute_dtype);
    return;
  }
  ctx.gemm(m, in_, out_, matrix(dy, ldy, false), matrix(*weight_->value, false), dx, in_, 1.0f, accumulate);
}

void Linear::add_bias(const kernels::Context& ctx, int64_t m, float* y, int64_t ldy) const {
  if (!bias_) return;
  ctx.add_row_vector(m, out_, ldy, bias_->data(), y);
}

void Linear::add_base_grads(const kernels::Context& ctx, int64_t m, const float* dy, int64_t ldy, const float* input) const {
  if (float* gw = weight_->grad_data()) {
    PEFT_CHECK(weight_->value->dtype() == DType::F32, ErrorCode::DType, "Cannot train the bf16 weight " + weight_->name);
    ctx.gemm(out_, in_, m, matrix(dy, ldy, true), matrix(input, in_, false), gw, in_, 1.0f, true);
  }
  if (bias_)
    if (float* gb = bias_->grad_data()) ctx.add_column_sums(m, out_, ldy, dy, gb);
}

void Linear::check_strided(int64_t ldy) const {
  PEFT_CHECK(lora_.empty() && ia3_.empty() && !quant(), ErrorCode::Internal,
             "A strided product of " + name_ + " needs a dense layer without adapters");
  PEFT_CHECK(ldy >= out_, ErrorCode::Shape,
             "Expected a row stride of at least " + std::to_string(out_) + " for " + name_ + " but received " +
                 std::to_string(ldy));
}

void Linear::forward_strided(const kernels::Context& ctx, int64_t m, const float* x, float* y, int64_t ldy) const {
  check_strided(ldy);
  base_product(ctx, m, x, y, false, ldy);
  add_bias(ctx, m, y, ldy);
}

void Linear::backward_strided(const kernels::Context& ctx, int64_t m, const float* dy, int64_t ldy, const float* x, float* dx,
                              bool accumulate_dx) const {
  check_strided(ldy);
  add_base_grads(ctx, m, dy, ldy, x);
  if (dx) base_product_dx(ctx, m, dy, dx, accumulate_dx, ldy);
}

std::vector<float> Linear::weight_values() const {
  if (const QuantWeight* q = quant()) return q->dequantize_all();
  return weight_as_f32(*weight_->value);
}

QuantWeightPtr Linear::store_weight_values(const std::vector<float>& values, bool requantize) {
  const QuantWeightPtr q = weight_->quant;
  if (!q) {
    store_weight(*weight_->value, values);
    return nullptr;
  }
  if (requantize) {
    restore_quant(q->requantized(values));
    return nullptr;
  }
  // Dense from now on, in the dtype the 4-bit products computed in.
  auto dense = std::make_shared<Tensor>(Tensor::uninitialized(q->compute_dtype, q->shape));  // [out, in]
  store_weight(*dense, values);
  weight_->value = std::move(dense);
  weight_->quant = nullptr;
  return q;
}

void Linear::restore_quant(QuantWeightPtr q) {
  weight_->value = q->packed;
  weight_->quant = std::move(q);
}

}  // namespace peft::nn
