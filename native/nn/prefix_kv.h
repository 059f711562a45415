// Prefix tuning's virtual keys and values, joined to a layer's own (Hugging Face PEFT's
// past_key_values layout: per virtual token, the keys then the values of layer 0, then layer 1, ...).
#pragma once
#include <cstdint>

#include "nn/param.h"
#include "kernels/backend.h"

namespace peft::nn {

// Prefix tuning: all: [B, V + T, kv_dim] ← the prefix's keys (or values, `which` 0 / 1) of `layer`
// for V virtual positions, then the tokens' [B · T, kv_dim].
void join_prefix(const kernels::Context& ctx, const Param& prefix, int64_t layer, int which, int64_t layers, int64_t kv_dim, int64_t B,
                 int64_t T, const float* tokens, float* all);
// The reverse: d_all [B, V + T, kv_dim] → d_tokens [B · T, kv_dim] and the prefix gradient (added).
void split_prefix_grad(const kernels::Context& ctx, Param& prefix, int64_t layer, int which, int64_t layers, int64_t kv_dim, int64_t B, int64_t T,
                       const float* d_all, float* d_tokens);

}  // namespace peft::nn
