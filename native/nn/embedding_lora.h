// LoRA on an embedding table (Hugging Face PEFT's lora_embedding_A / lora_embedding_B):
//   y[t] = E[id_t] + s · B · A[:, id_t]
// with A [r, vocab] (a column per token) and B [hidden, r].
#pragma once
#include <cstdint>

#include "nn/param.h"
#include "kernels/backend.h"

namespace peft::nn {

struct EmbeddingLora {
  ParamPtr a;  // lora_embedding_A [r, vocab] f32
  ParamPtr b;  // lora_embedding_B [hidden, r] f32
  float scaling = 1;
  bool merged = false;
};

// y[i] += s · B · A[:, ids[i]] for rows [row0, row0 + rows); ids: [rows] i32; y: [rows, hidden].
void embedding_lora_forward(const kernels::Context& ctx, const EmbeddingLora& w, int64_t rows, const int32_t* ids, float* y);
// dy: [rows, hidden]; ids: [rows]. Adds into the gradients of A and B (when they train).
void embedding_lora_backward(const kernels::Context& ctx, const EmbeddingLora& w, int64_t rows, const int32_t* ids, const float* dy);

}  // namespace peft::nn
