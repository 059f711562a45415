#include "nn/linear_math.h"

#include "kernels/convert.h"

namespace peft::nn {

std::vector<float> weight_as_f32(const Tensor& w) {
  std::vector<float> out(static_cast<size_t>(w.numel()));
  kernels::convert(out.data(), DType::F32, w.data(), w.dtype(), w.numel());
  return out;
}

void store_weight(Tensor& w, const std::vector<float>& values) {
  kernels::convert(w.data(), w.dtype(), values.data(), DType::F32, w.numel());
}

}  // namespace peft::nn
