// Small helpers the modules and models share for their f32 activation buffers.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "kernels/backend.h"

namespace peft::nn {

using TensorPtr = std::shared_ptr<Tensor>;

// A new f32 tensor of `shape` in the context's memory, uninitialized.
inline TensorPtr f32(const kernels::Context& ctx, const Shape& shape) { return ctx.empty(DType::F32, shape); }
inline float* p(const TensorPtr& t) { return t ? t->data_as<float>() : nullptr; }

// Backward buffers reused across the layers of one backward pass (each layer's backward needs the
// same sizes), by name; freed with the workspace.
class Workspace {
 public:
  // An f32 buffer of at least n values under `key` (its contents are whatever the last user left),
  // in the context's memory.
  float* get(const kernels::Context& ctx, const std::string& key, int64_t n);

 private:
  std::map<std::string, TensorPtr> buffers_;
};

}  // namespace peft::nn
