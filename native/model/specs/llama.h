// The Llama family (Llama 2/3, Mistral, Mixtral, Qwen2, Qwen3, Phi-3, SmolLM) as a decoder spec: RMSNorm, RoPE,
// grouped-query attention with separate q/k/v (optionally with biases, per-head q/k norms or a
// sliding window; fused q/k/v and gate/up projections for Phi-3), SwiGLU or a mixture of SwiGLU
// experts (Mixtral), tied or separate head.
#pragma once
#include <vector>

#include "model/decoder_spec.h"

namespace peft::model {

struct LlamaConfig {
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab = 0;
  float rms_eps = 1e-5f;
  double rope_theta = 10000;
  std::vector<float> rope_freq_scale;  // [head_dim / 2] per-frequency factors (rope_scaling), empty = none
  bool tie_embeddings = false;
  bool attention_bias = false;  // q, k and v projections have biases (Qwen2)
  bool qk_norm = false;         // RMSNorm of each query and key head (Qwen3)
  int64_t sliding_window = 0;   // Mistral's sliding window; 0 = none
  bool fused_projections = false;  // Phi-3: self_attn.qkv_proj and mlp.gate_up_proj
  int64_t experts = 0, experts_per_token = 0;  // Mixtral: block_sparse_moe with this many experts, top k
};

DecoderSpec llama_spec(const LlamaConfig& c);

}  // namespace peft::model
