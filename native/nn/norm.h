// A row normalization module with its parameters: RMSNorm (Llama) or LayerNorm (GPT-2, BERT), with
// an optional bias and Gemma's unit offset (the weight is stored as w − 1: y = norm(x) · (1 + w)).
#pragma once
#include <memory>

#include "nn/buffers.h"
#include "nn/param.h"

namespace peft::nn {

enum class NormKind { Rms, Layer };

// What a forward keeps for the backward: per row statistics.
struct NormCache {
  TensorPtr mean;  // [m] (LayerNorm only)
  TensorPtr rstd;  // [m]
};

class Norm {
 public:
  Norm() = default;
  // weight: [dim] f32; bias: [dim] f32 or null (RMSNorm has none).
  Norm(NormKind kind, ParamPtr weight, ParamPtr bias, float eps, bool unit_offset);

  bool present() const { return weight_ != nullptr; }
  int64_t dim() const { return weight_->value->numel(); }
  // x: [m, dim] → y: [m, dim] (y may alias x); fills cache.
  void forward(const kernels::Context& ctx, int64_t m, const float* x, float* y, NormCache& cache) const;
  // dy, x: [m, dim]; cache: that forward's. dx: [m, dim] written, or null. Adds the weight's (and
  // bias's) gradient where they train.
  void backward(const kernels::Context& ctx, int64_t m, const float* dy, const float* x, const NormCache& cache, float* dx) const;

 private:
  NormKind kind_ = NormKind::Rms;
  ParamPtr weight_, bias_;
  float eps_ = 1e-5f;
  bool unit_offset_ = false;

  // The weight the kernels see: w, or 1 + w with a unit offset (held in `scratch`).
  const float* effective_weight(std::unique_ptr<float[]>& scratch) const;
};

}  // namespace peft::nn
