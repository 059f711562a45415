#include "model/specs/gemma.h"

#include <cmath>

#include "core/error.h"

namespace peft::model {

DecoderSpec gemma_spec(const GemmaConfig& c) {
  PEFT_CHECK(c.version == 2 || c.version == 3, ErrorCode::Config,
             "Expected Gemma version 2 or 3 but received " + std::to_string(c.version));
  DecoderSpec s = llama_spec(c.base);
  s.architecture = c.version == 2 ? "gemma2" : "gemma3";
  s.norm_unit_offset = true;
  s.sandwich_norms = true;
  s.names.post_norm = "pre_feedforward_layernorm";
  s.names.attn_out_norm = "post_attention_layernorm";
  s.names.mlp_out_norm = "post_feedforward_layernorm";
  s.mlp = nn::MlpKind::GeGlu;
  s.embed_scale = std::sqrt(static_cast<float>(c.base.hidden));
  const float scalar = c.query_pre_attn_scalar > 0 ? c.query_pre_attn_scalar : static_cast<float>(c.base.head_dim);
  s.attn_scale = 1.0f / std::sqrt(scalar);
  s.attn_softcap = c.attn_softcap;
  s.final_softcap = c.final_softcap;
  s.sliding_window = c.sliding_window;
  s.sliding_layers = c.sliding_layers;
  s.rope_local_theta = c.rope_local_theta;
  s.qk_norm = c.version == 3;
  return s;
}

}  // namespace peft::model
