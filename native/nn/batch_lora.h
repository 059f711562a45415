// LoRA adapters that live outside the model's layers, one per group of batch rows: a server's pool of
// adapters over one base model. A forward names, for each consecutive run of rows (one request's
// tokens), which of the batch's adapters applies; every Linear then adds that adapter's rank-r update
// with one multi-adapter call (kernels/lora_batch.h) instead of a product per adapter.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "kernels/backend.h"
#include "kernels/lora_batch.h"

namespace peft::nn {

// One layer's factors in a served adapter.
struct BatchLoraModule {
  std::shared_ptr<Tensor> a;  // lora_A [r, in] f32
  std::shared_ptr<Tensor> b;  // lora_B [out, r] f32
  float scale = 1;            // lora_alpha / r (or / sqrt(r))
};

// A served adapter: its layers by module name (model.layers.0.self_attn.q_proj, ...).
using BatchLoraAdapter = std::unordered_map<std::string, BatchLoraModule>;

// The adapters of one forward and which rows each applies to.
struct BatchLora {
  std::vector<const BatchLoraAdapter*> adapters;  // indexed by the segments
  std::vector<kernels::LoraSegment> segments;     // rows → adapter index, or -1 for none
};

// y[m, out] += each segment's adapter update of `module` on x[m, in]; adapters without that module
// leave their rows alone.
void apply_batch_lora(const kernels::Context& ctx, const BatchLora& batch, const std::string& module, int64_t m,
                      int64_t out, int64_t in, const float* x, float* y);

}  // namespace peft::nn
