// What distinguishes one decoder-only architecture from another: sizes, the kind of each part of a
// block, and the names of its tensors. DecoderModel (model/decoder.h) builds any of them; an
// architecture is a function that fills a spec from its config (model/specs/).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/mlp.h"
#include "nn/norm.h"

namespace peft::model {

struct DecoderSpec {
  std::string architecture;  // for messages: "llama", "gpt2", ...
  int64_t hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;

  nn::NormKind norm = nn::NormKind::Rms;
  float norm_eps = 1e-5f;
  bool norm_bias = false;         // LayerNorm with a bias
  bool norm_unit_offset = false;  // every norm scales by 1 + w (Gemma stores w − 1)
  bool sandwich_norms = false;    // norms on the attention's and the MLP's outputs too (Gemma 2/3)
  float embed_scale = 0;          // the embeddings (virtual tokens too) are multiplied by this (Gemma: √hidden); 0 = 1

  // Positions: RoPE in the attention, or a learned table added to the token embeddings.
  bool rope = true;
  double rope_theta = 10000;
  std::vector<float> rope_freq_scale;  // [head_dim / 2] per-frequency factors (rope_scaling), empty = none
  int64_t learned_positions = 0;       // rows of the learned table (the context limit); 0 = none

  bool qk_norm = false;          // RMSNorm of each query and key head before RoPE (Qwen3; names.q_norm / k_norm)
  int64_t sliding_window = 0;    // the queries see only the last this many positions (Mistral); 0 = all
  std::vector<uint8_t> sliding_layers;  // [layers] 1 = the window applies (Gemma 2/3 alternate); empty = every layer
  double rope_local_theta = 0;   // RoPE base of the sliding-window layers, unscaled (Gemma 3); 0 = as the others
  float attn_scale = 0;          // query scale; 0 = 1 / sqrt(head_dim)
  float attn_softcap = 0;        // attention scores soft-capped at this (Gemma 2); 0 = none
  float final_softcap = 0;       // logits soft-capped at this (Gemma 2); 0 = none
  bool fused_qkv = false;  // one projection makes q, k and v (names.qkv)
  bool fused_gate_up = false;  // one projection makes the MLP's gate and up (names.gate_up, Phi-3)
  bool qkv_bias = false, out_bias = false, mlp_bias = false;
  nn::MlpKind mlp = nn::MlpKind::SwiGlu;
  // A sparse mixture of experts in place of the MLP (Mixtral): `experts` SwiGLU MLPs of width
  // `intermediate`, the top `experts_per_token` per token; routing weights renormalized (or not).
  int64_t experts = 0, experts_per_token = 0;
  bool moe_normalize = true;
  bool tied_head = false;  // the output head is the token embedding table

  // Hugging Face names. Block parts are relative to "<layer_prefix><index>."; a tensor is the
  // module's name + ".weight" / ".bias".
  struct Names {
    std::string embed = "model.embed_tokens";
    std::string positions;  // the learned position table's module, when learned_positions
    std::string layer_prefix = "model.layers.";
    std::string input_norm = "input_layernorm", post_norm = "post_attention_layernorm";
    std::string q = "self_attn.q_proj", k = "self_attn.k_proj", v = "self_attn.v_proj", qkv;
    std::string o = "self_attn.o_proj";
    std::string q_norm = "self_attn.q_norm", k_norm = "self_attn.k_norm";
    std::string attn_out_norm, mlp_out_norm;  // sandwich norms
    std::string gate = "mlp.gate_proj", up = "mlp.up_proj", down = "mlp.down_proj";  // plain MLP: gate = first, up empty
    std::string gate_up = "mlp.gate_up_proj";
    std::string router = "block_sparse_moe.gate", expert_prefix = "block_sparse_moe.experts.";
    std::string expert_gate = "w1", expert_up = "w3", expert_down = "w2";
    std::string final_norm = "model.norm";
    std::string head = "lm_head";
  } names;
};

}  // namespace peft::model
