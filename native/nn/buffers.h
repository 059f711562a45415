// Small helpers the modules and models share for their f32 activation buffers.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace peft::nn {

using TensorPtr = std::shared_ptr<Tensor>;

// A new f32 tensor of `shape`, uninitialized.
inline TensorPtr f32(const Shape& shape) { return std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, shape)); }
inline float* p(const TensorPtr& t) { return t ? t->data_as<float>() : nullptr; }

// dst[i] += src[i] for i < n. src, dst: [n].
void add_into(int64_t n, const float* src, float* dst);

// Fused projections: dst [m, width] ← columns [offset, offset + width) of src [m, src_width] ...
void copy_columns(int64_t m, int64_t width, int64_t src_width, int64_t offset, const float* src, float* dst);
// ... and back: columns [offset, offset + width) of dst [m, dst_width] ← src [m, width].
void place_columns(int64_t m, int64_t width, int64_t dst_width, int64_t offset, const float* src, float* dst);

// Backward buffers reused across the layers of one backward pass (each layer's backward needs the
// same sizes), by name; freed with the workspace.
class Workspace {
 public:
  // An f32 buffer of at least n values under `key` (its contents are whatever the last user left).
  float* get(const std::string& key, int64_t n);

 private:
  std::map<std::string, TensorPtr> buffers_;
};

}  // namespace peft::nn
