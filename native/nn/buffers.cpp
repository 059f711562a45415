#include "nn/buffers.h"

namespace peft::nn {

float* Workspace::get(const kernels::Context& ctx, const std::string& key, int64_t n) {
  TensorPtr& t = buffers_[key];
  if (!t || t->numel() < n) t = f32(ctx, {n});
  return t->data_as<float>();
}

}  // namespace peft::nn
