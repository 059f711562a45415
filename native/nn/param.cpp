#include "nn/param.h"

#include <cstring>

#include "core/error.h"

namespace peft::nn {

float* Param::grad_data() {
  if (!trainable) return nullptr;
  PEFT_CHECK(quant == nullptr, ErrorCode::DType, "Cannot train the 4-bit weight " + name + ": 4-bit weights are frozen");
  if (!grad || grad->shape() != value->shape()) grad = std::make_shared<Tensor>(DType::F32, value->shape());
  return grad->data_as<float>();
}

void Param::zero_grad() {
  if (grad) std::memset(grad->data(), 0, grad->nbytes());
}

}  // namespace peft::nn
