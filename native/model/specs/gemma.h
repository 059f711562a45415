// Gemma 2 and Gemma 3 (text) as decoder specs: the Llama layout with RMSNorm scaling by 1 + w,
// sandwich norms around both sublayers (post_attention_layernorm on the attention's output,
// pre_feedforward_layernorm / post_feedforward_layernorm around the MLP), a GeGLU MLP (tanh-GELU),
// embeddings scaled by √hidden, query_pre_attn_scalar, a sliding window on some layers, and for
// Gemma 2 soft-capped attention scores and logits, for Gemma 3 per-head q/k norms and a separate
// RoPE base on the sliding-window layers.
#pragma once
#include <vector>

#include "model/specs/llama.h"

namespace peft::model {

struct GemmaConfig {
  LlamaConfig base;                    // sizes, eps, RoPE (of the global layers), tied head
  int version = 2;                     // 2 or 3
  float query_pre_attn_scalar = 0;     // scores scale by its inverse square root; 0 = head_dim
  float attn_softcap = 0, final_softcap = 0;  // Gemma 2's attn_logit_softcapping / final_logit_softcapping
  int64_t sliding_window = 0;
  std::vector<uint8_t> sliding_layers;  // [layers] 1 = a sliding-window layer
  double rope_local_theta = 0;          // Gemma 3's rope_local_base_freq (0 = rope_theta)
};

DecoderSpec gemma_spec(const GemmaConfig& c);

}  // namespace peft::model
