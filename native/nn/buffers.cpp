#include "nn/buffers.h"

#include <cstring>

namespace peft::nn {

void add_into(int64_t n, const float* src, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

void copy_columns(int64_t m, int64_t width, int64_t src_width, int64_t offset, const float* src, float* dst) {
  for (int64_t i = 0; i < m; ++i) std::memcpy(dst + i * width, src + i * src_width + offset, sizeof(float) * width);
}

void place_columns(int64_t m, int64_t width, int64_t dst_width, int64_t offset, const float* src, float* dst) {
  for (int64_t i = 0; i < m; ++i) std::memcpy(dst + i * dst_width + offset, src + i * width, sizeof(float) * width);
}

float* Workspace::get(const std::string& key, int64_t n) {
  TensorPtr& t = buffers_[key];
  if (!t || t->numel() < n) t = f32({n});
  return t->data_as<float>();
}

}  // namespace peft::nn
