#include "model/param_depth.h"

#include <cstdlib>

namespace peft::model {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

}  // namespace

int param_depth(const std::string& name, int64_t layers) {
  const std::string layer_prefix = "model.layers.";
  if (starts_with(name, layer_prefix)) {
    const char* digits = name.c_str() + layer_prefix.size();
    char* end = nullptr;
    const long layer = std::strtol(digits, &end, 10);
    const std::string rest = end && *end == '.' ? std::string(end + 1) : std::string();
    const int base = layer_depth(layer);
    if (starts_with(rest, "input_layernorm")) return base + kInputNorm;
    if (starts_with(rest, "attn_adapter")) return base + kOutProj;  // sits on the attention output
    if (starts_with(rest, "mlp_adapter")) return base + kDown;      // sits on the MLP output
    if (starts_with(rest, "self_attn.o_proj")) return base + kOutProj;
    if (starts_with(rest, "self_attn.")) return base + kQkv;
    if (starts_with(rest, "post_attention_layernorm")) return base + kPostNorm;
    if (starts_with(rest, "mlp.down_proj")) return base + kDown;
    if (starts_with(rest, "mlp.")) return base + kGateUp;
    return base;  // unknown parts of a layer: assume its start, which keeps every gradient below it
  }
  if (starts_with(name, "prefix_kv.")) return layer_depth(0) + kQkv;  // enters every layer's attention
  if (starts_with(name, "model.norm")) return final_norm_depth(layers);
  if (starts_with(name, "lm_head")) return head_depth(layers);
  return 0;  // embeddings, virtual tokens, anything else
}

}  // namespace peft::model
