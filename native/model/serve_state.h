// What a decoder keeps for serving many requests at once (see DecoderModel::serve_step): one KV cache
// per request (a slot, sized for that request and freed when it ends, so memory follows the load),
// and the adapters registered from a server's pool, each usable by any group of rows of a step.
#pragma once
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "nn/batch_lora.h"

namespace peft::model {

struct ServeSlot {
  std::vector<std::shared_ptr<Tensor>> k, v;  // per layer [capacity, kv_heads, head_dim] (k after RoPE)
  int64_t length = 0;                          // positions filled
  int64_t capacity = 0;
};

// One request's part of a step: `rows` new tokens for slot `slot`, with registered adapter `adapter`
// (0: none).
struct ServeSegment {
  int64_t slot = 0;
  int64_t rows = 0;
  int64_t adapter = 0;
};

struct ServeState {
  std::unordered_map<int64_t, ServeSlot> slots;
  std::unordered_map<int64_t, std::shared_ptr<const nn::BatchLoraAdapter>> adapters;
  int64_t next_slot = 1, next_adapter = 1;
};

}  // namespace peft::model
