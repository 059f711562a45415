#include "model/specs/gpt2.h"

#include "core/error.h"

namespace peft::model {

DecoderSpec gpt2_spec(const Gpt2Config& c) {
  PEFT_CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.hidden % c.heads == 0 && c.inner > 0 && c.vocab > 0 &&
                 c.positions > 0,
             ErrorCode::Config,
             "Expected positive sizes and a hidden size divisible by the heads in the GPT-2 config");
  DecoderSpec s;
  s.architecture = "gpt2";
  s.hidden = c.hidden;
  s.intermediate = c.inner;
  s.layers = c.layers;
  s.heads = c.heads;
  s.kv_heads = c.heads;
  s.head_dim = c.hidden / c.heads;
  s.vocab = c.vocab;
  s.norm = nn::NormKind::Layer;
  s.norm_eps = c.ln_eps;
  s.norm_bias = true;
  s.rope = false;
  s.learned_positions = c.positions;
  s.fused_qkv = true;
  s.qkv_bias = s.out_bias = s.mlp_bias = true;
  s.mlp = nn::MlpKind::GeluTanh;
  s.tied_head = true;
  DecoderSpec::Names& n = s.names;
  n.embed = "transformer.wte";
  n.positions = "transformer.wpe";
  n.layer_prefix = "transformer.h.";
  n.input_norm = "ln_1";
  n.post_norm = "ln_2";
  n.q = n.k = n.v = "";
  n.qkv = "attn.c_attn";
  n.o = "attn.c_proj";
  n.gate = "mlp.c_fc";
  n.up = "";
  n.down = "mlp.c_proj";
  n.final_norm = "transformer.ln_f";
  return s;
}

}  // namespace peft::model
