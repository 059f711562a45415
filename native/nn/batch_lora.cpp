#include "nn/batch_lora.h"

#include "core/error.h"

namespace peft::nn {

void apply_batch_lora(const kernels::Context& ctx, const BatchLora& batch, const std::string& module, int64_t m,
                      int64_t out, int64_t in, const float* x, float* y) {
  // This module's factors per batch adapter; -1 where the adapter does not touch the module.
  std::vector<kernels::LoraAdapterRef> refs;
  std::vector<int32_t> index(batch.adapters.size(), -1);
  for (size_t i = 0; i < batch.adapters.size(); ++i) {
    auto it = batch.adapters[i]->find(module);
    if (it == batch.adapters[i]->end()) continue;
    const BatchLoraModule& f = it->second;
    PEFT_CHECK(f.a->dim(1) == in && f.b->dim(0) == out, ErrorCode::Shape,
               "A served adapter's factors for " + module + " do not fit the layer [" + std::to_string(out) + ", " +
                   std::to_string(in) + "]");
    index[i] = static_cast<int32_t>(refs.size());
    refs.push_back({f.a->data_as<float>(), f.b->data_as<float>(), f.a->dim(0), f.scale});
  }
  if (refs.empty()) return;
  std::vector<kernels::LoraSegment> segments;
  segments.reserve(batch.segments.size());
  for (const kernels::LoraSegment& s : batch.segments)
    if (s.adapter >= 0 && index[static_cast<size_t>(s.adapter)] >= 0)
      segments.push_back({s.row0, s.rows, index[static_cast<size_t>(s.adapter)]});
  if (segments.empty()) return;
  ctx.lora_batch_forward(m, out, in, x, in, refs.data(), static_cast<int64_t>(refs.size()), segments.data(),
                         static_cast<int64_t>(segments.size()), y, out);
}

}  // namespace peft::nn
