// The base weight's products and storage for Linear: a dense W (f32 / bf16) goes through the GEMM,
// a 4-bit W through the panel-by-panel 4-bit products; merging reads and writes W as f32 values.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/convert.h"
#include "kernels/gemm.h"
#include "kernels/nf4.h"
#include "nn/linear.h"
#include "nn/linear_math.h"

namespace peft::nn {

namespace {

// The dequantized-panel buffer of this thread's 4-bit products, grown to the largest layer seen.
float* quant_workspace(int64_t out, int64_t in) {
  thread_local std::vector<float> buffer;
  const auto need = static_cast<size_t>(kernels::quant4_matmul_workspace(out, in));
  if (buffer.size() < need) buffer.resize(need);
  return buffer.data();
}

}  // namespace

void Linear::base_product(int64_t m, const float* x, float* y, bool accumulate) const {
  if (const QuantWeight* q = quant()) {
    kernels::quant4_matmul(m, out_, in_, matrix(x, in_, false), q->view(), y, out_, 1.0f, accumulate,
                           quant_workspace(out_, in_), q->compute_dtype);
    return;
  }
  kernels::gemm(m, out_, in_, matrix(x, in_, false), matrix(*weight_->value, true), y, out_, 1.0f, accumulate);
}

void Linear::base_product_dx(int64_t m, const float* dy, float* dx, bool accumulate) const {
  if (const QuantWeight* q = quant()) {
    kernels::quant4_matmul_dx(m, out_, in_, dy, q->view(), dx, 1.0f, accumulate, quant_workspace(out_, in_),
                              q->compute_dtype);
    return;
  }
  kernels::gemm(m, in_, out_, matrix(dy, out_, false), matrix(*weight_->value, false), dx, in_, 1.0f, accumulate);
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
