#include "model/specs/llama.h"

namespace peft::model {

DecoderSpec llama_spec(const LlamaConfig& c) {
  DecoderSpec s;  // the defaults are Llama's names and parts
  s.architecture = "llama";
  s.hidden = c.hidden;
  s.intermediate = c.intermediate;
  s.layers = c.layers;
  s.heads = c.heads;
  s.kv_heads = c.kv_heads;
  s.head_dim = c.head_dim;
  s.vocab = c.vocab;
  s.norm = nn::NormKind::Rms;
  s.norm_eps = c.rms_eps;
  s.rope = true;
  s.rope_theta = c.rope_theta;
  s.rope_freq_scale = c.rope_freq_scale;
  s.qkv_bias = c.attention_bias;
  s.qk_norm = c.qk_norm;
  s.sliding_window = c.sliding_window;
  s.experts = c.experts;
  s.experts_per_token = c.experts_per_token;
  if (c.fused_projections) {
    s.fused_qkv = s.fused_gate_up = true;
    s.names.q = s.names.k = s.names.v = s.names.gate = s.names.up = "";
    s.names.qkv = "self_attn.qkv_proj";
  }
  s.mlp = nn::MlpKind::SwiGlu;
  s.tied_head = c.tie_embeddings;
  return s;
}

}  // namespace peft::model
