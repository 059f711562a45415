#include "nn/buffers.h"

namespace peft::nn {

void add_into(int64_t n, const float* src, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

float* Workspace::get(const std::string& key, int64_t n) {
  TensorPtr& t = buffers_[key];
  if (!t || t->numel() < n) t = f32({n});
  return t->data_as<float>();
}

}  // namespace peft::nn
