// GPT-2 as a decoder spec (Hugging Face names transformer.wte, transformer.wpe, transformer.h.N.ln_1,
// attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, transformer.ln_f): learned positions,
// pre-LayerNorm blocks with a fused q/k/v projection, a GELU (tanh) MLP, biases everywhere, and the
// head tied to the token embeddings. Conv1D weights arrive transposed to [out, in] (the facade does it).
#pragma once
#include "model/decoder_spec.h"

namespace peft::model {

struct Gpt2Config {
  int64_t hidden = 0;     // n_embd
  int64_t layers = 0;     // n_layer
  int64_t heads = 0;      // n_head
  int64_t inner = 0;      // n_inner (4 · hidden by default)
  int64_t vocab = 0;
  int64_t positions = 0;  // n_positions
  float ln_eps = 1e-5f;   // layer_norm_epsilon
};

DecoderSpec gpt2_spec(const Gpt2Config& c);

}  // namespace peft::model
