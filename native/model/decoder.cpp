#include "model/decoder.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/profile.h"
#include "kernels/activation.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/rope.h"
#include "model/decoder_parts.h"
#include "model/head_loss.h"
#include "model/param_depth.h"
#include "nn/prefix_kv.h"

namespace peft::model {

namespace {

using nn::f32;
using nn::p;
using nn::TensorPtr;
using Block = nn::DecoderBlock;

HostDims decoder_dims(const DecoderSpec& s) {
  return HostDims{s.hidden, s.vocab, s.layers, s.kv_heads * s.head_dim, s.tied_head, s.names.embed, s.names.layer_prefix};
}

// A projection of a block: its module name (relative to the layer), its step, a bias, [out, in].
struct LinearPart {
  std::string name;
  int step;
  bool bias;
  int64_t out, in;
};

// The blocks' projections in forward order.
std::vector<LinearPart> linear_parts(const DecoderSpec& s) {
  const int64_t qd = s.heads * s.head_dim, kd = s.kv_heads * s.head_dim, H = s.hidden, F = s.intermediate;
  std::vector<LinearPart> parts;
  if (s.fused_qkv) {
    parts.push_back({s.names.qkv, Block::kQkv, s.qkv_bias, qd + 2 * kd, H});
  } else {
    parts.push_back({s.names.q, Block::kQkv, s.qkv_bias, qd, H});
    parts.push_back({s.names.k, Block::kQkv, s.qkv_bias, kd, H});
    parts.push_back({s.names.v, Block::kQkv, s.qkv_bias, kd, H});
  }
  parts.push_back({s.names.o, Block::kOutProj, s.out_bias, H, qd});
  if (s.experts > 0) {
    parts.push_back({s.names.router, Block::kGateUp, false, s.experts, H});
    for (int64_t e = 0; e < s.experts; ++e) {
      const std::string expert = s.names.expert_prefix + std::to_string(e) + ".";
      parts.push_back({expert + s.names.expert_gate, Block::kGateUp, false, F, H});
      parts.push_back({expert + s.names.expert_up, Block::kGateUp, false, F, H});
      parts.push_back({expert + s.names.expert_down, Block::kDown, false, H, F});
    }
  } else if (s.fused_gate_up) {
    parts.push_back({s.names.gate_up, Block::kGateUp, s.mlp_bias, 2 * F, H});
  } else {
    parts.push_back({s.names.gate, Block::kGateUp, s.mlp_bias, F, H});
    if (!s.names.up.empty()) parts.push_back({s.names.up, Block::kGateUp, s.mlp_bias, F, H});
  }
  if (s.experts == 0) parts.push_back({s.names.down, Block::kDown, s.mlp_bias, H, F});
  return parts;
}

void check_spec(const DecoderSpec& s) {
  PEFT_CHECK(s.hidden > 0 && s.layers > 0 && s.heads > 0 && s.kv_heads > 0 && s.heads % s.kv_heads == 0 &&
                 s.head_dim > 0 && (!s.rope || s.head_dim % 2 == 0) && s.vocab > 0 && s.intermediate > 0,
             ErrorCode::Config, "Expected positive sizes, heads a multiple of kv heads and an even head_dim in the model config");
  PEFT_CHECK(s.rope_freq_scale.empty() || static_cast<int64_t>(s.rope_freq_scale.size()) == s.head_dim / 2,
             ErrorCode::Config, "Expected head_dim / 2 RoPE frequency factors");
  PEFT_CHECK(s.learned_positions >= 0 && (s.learned_positions > 0) == !s.names.positions.empty(), ErrorCode::Config,
             "Expected a learned position table with a name and a positive size, or neither");
  PEFT_CHECK(s.sliding_window >= 0, ErrorCode::Config,
             "Expected a non-negative sliding window but received " + std::to_string(s.sliding_window));
  PEFT_CHECK(s.sliding_layers.empty() || static_cast<int64_t>(s.sliding_layers.size()) == s.layers, ErrorCode::Config,
             "Expected one sliding-window flag per layer (" + std::to_string(s.layers) + ")");
  PEFT_CHECK(s.embed_scale >= 0 && s.attn_scale >= 0 && s.attn_softcap >= 0 && s.final_softcap >= 0 &&
                 s.rope_local_theta >= 0,
             ErrorCode::Config, "Expected non-negative embedding scale, attention scale, soft-caps and local RoPE base");
  PEFT_CHECK(!s.sandwich_norms || (!s.names.attn_out_norm.empty() && !s.names.mlp_out_norm.empty()), ErrorCode::Config,
             "Expected the names of the sandwich norms");
  const bool gated = s.mlp == nn::MlpKind::SwiGlu || s.mlp == nn::MlpKind::GeGlu;
  PEFT_CHECK(s.experts >= 0 && (s.experts == 0 || (gated && s.experts_per_token >= 1 && s.experts_per_token <= s.experts)),
             ErrorCode::Config, "Expected gated experts and 1 to " + std::to_string(s.experts) +
                                    " experts per token but received " + std::to_string(s.experts_per_token));
  if (s.experts == 0)
    PEFT_CHECK(gated ? (s.fused_gate_up || !s.names.up.empty()) : (s.names.up.empty() && !s.fused_gate_up),
               ErrorCode::Config, "Expected an up projection for a gated MLP and none for a plain one");
}

}  // namespace

DecoderModel::DecoderModel(DecoderSpec spec, TensorMap weights, nn::QuantWeightMap quantized)
    : AdapterHost(decoder_dims(spec)), spec_(std::move(spec)) {
  check_spec(spec_);
  build_parameters(weights, quantized);
  if (spec_.rope) {
    inv_freq_.resize(static_cast<size_t>(spec_.head_dim / 2));
    kernels::rope_inv_freq(spec_.head_dim, spec_.rope_theta,
                           spec_.rope_freq_scale.empty() ? nullptr : spec_.rope_freq_scale.data(), inv_freq_.data());
    if (spec_.rope_local_theta > 0) {
      inv_freq_local_.resize(inv_freq_.size());
      kernels::rope_inv_freq(spec_.head_dim, spec_.rope_local_theta, nullptr, inv_freq_local_.data());
    }
  }
  build_blocks();
}

DecoderModel::~DecoderModel() = default;

std::string DecoderModel::layer_name(int64_t layer, const std::string& part) const {
  return spec_.names.layer_prefix + std::to_string(layer) + "." + part;
}

std::vector<std::string> DecoderModel::parameter_names() const {
  const DecoderSpec& s = spec_;
  std::vector<std::string> names = {s.names.embed + ".weight"};
  if (s.learned_positions) names.push_back(s.names.positions + ".weight");
  auto norm = [&](const std::string& module) {
    names.push_back(module + ".weight");
    if (s.norm_bias) names.push_back(module + ".bias");
  };
  for (int64_t l = 0; l < s.layers; ++l) {
    norm(layer_name(l, s.names.input_norm));
    bool post_norm = false;  // the second norm comes before the MLP's projections
    for (const LinearPart& part : linear_parts(s)) {
      if (part.step > Block::kPostNorm && !post_norm) {  // before the MLP's first projection
        norm(layer_name(l, s.names.post_norm));
        post_norm = true;
      }
      names.push_back(layer_name(l, part.name) + ".weight");
      if (part.bias) names.push_back(layer_name(l, part.name) + ".bias");
      if (part.step == Block::kOutProj && s.qk_norm) {
        names.push_back(layer_name(l, s.names.q_norm) + ".weight");
        names.push_back(layer_name(l, s.names.k_norm) + ".weight");
      }
      if (part.step == Block::kOutProj && s.sandwich_norms) norm(layer_name(l, s.names.attn_out_norm));
    }
    if (s.sandwich_norms) norm(layer_name(l, s.names.mlp_out_norm));
  }
  norm(s.names.final_norm);
  if (!s.tied_head) names.push_back(s.names.head + ".weight");
  return names;
}

void DecoderModel::build_parameters(TensorMap& weights, const nn::QuantWeightMap& quantized) {
  const DecoderSpec& s = spec_;
  const std::vector<LinearPart> parts = linear_parts(s);
  // The projections' weights and an untied head: the linear layers, the only tensors that may be
  // quantized (an embedding table is gathered, not multiplied).
  std::set<std::string> projection_weights;
  for (int64_t l = 0; l < s.layers; ++l)
    for (const LinearPart& part : parts) projection_weights.insert(layer_name(l, part.name) + ".weight");
  if (!s.tied_head) projection_weights.insert(s.names.head + ".weight");
  for (const auto& [name, q] : quantized) {
    PEFT_CHECK(projection_weights.count(name), ErrorCode::Config,
               "Expected quantized weights only for the linear layers (the blocks' projections and an untied head) but received one for " + name);
    PEFT_CHECK(q != nullptr, ErrorCode::Argument, "No 4-bit weight given for " + name);
    q->validate(name);
  }
  // name: a tensor the spec needs, of `shape`; matrix: f32 or bf16 (else f32 only); depth: its place.
  auto expect = [&](const std::string& name, const Shape& shape, bool matrix, int depth) {
    nn::ParamPtr param;
    auto qit = quantized.find(name);
    if (qit != quantized.end()) {  // a 4-bit weight: frozen, its packed codes stand as the value
      const nn::QuantWeight& q = *qit->second;
      PEFT_CHECK(q.shape == shape, ErrorCode::Config,
                 "Expected shape " + shape_to_string(shape) + " for " + name + " (from the config) but the 4-bit weight has " +
                     shape_to_string(q.shape));
      param = std::make_shared<nn::Param>(name, q.packed);
      param->quant = qit->second;
    } else {
      auto it = weights.find(name);
      PEFT_CHECK(it != weights.end(), ErrorCode::Config, "The weights have no tensor " + name + ", which the config needs");
      const Tensor& t = *it->second;
      PEFT_CHECK(t.shape() == shape, ErrorCode::Config,
                 "Expected shape " + shape_to_string(shape) + " for " + name + " (from the config) but the weights have " +
                     shape_to_string(t.shape()));
      PEFT_CHECK(t.dtype() == DType::F32 || (matrix && t.dtype() == DType::BF16), ErrorCode::DType,
                 std::string("Expected f32") + (matrix ? " or bf16" : "") + " for " + name + " but received " +
                     dtype_name(t.dtype()));
      PEFT_CHECK(t.is_contiguous(), ErrorCode::Argument, name + " is not contiguous");
      param = std::make_shared<nn::Param>(name, it->second);
      param->trainable = t.dtype() == DType::F32;  // everything trains until a PEFT method freezes it
    }
    param->depth = depth;
    params_[name] = param;
  };
  auto norm = [&](const std::string& module, int depth) {
    expect(module + ".weight", {s.hidden}, false, depth);
    if (s.norm_bias) expect(module + ".bias", {s.hidden}, false, depth);
  };
  const std::string& embed = s.names.embed;
  expect(embed + ".weight", {s.vocab, s.hidden}, true, 0);  // bf16 allowed: rows are converted on lookup
  if (s.learned_positions) expect(s.names.positions + ".weight", {s.learned_positions, s.hidden}, true, 0);
  for (int64_t l = 0; l < s.layers; ++l) {
    const int base = layer_depth(l);
    norm(layer_name(l, s.names.input_norm), base + Block::kInputNorm);
    norm(layer_name(l, s.names.post_norm), base + Block::kPostNorm);
    if (s.qk_norm)
      for (const std::string* part : {&s.names.q_norm, &s.names.k_norm})
        expect(layer_name(l, *part) + ".weight", {s.head_dim}, false, base + Block::kQkv);
    if (s.sandwich_norms) {
      norm(layer_name(l, s.names.attn_out_norm), base + Block::kOutProj);
      norm(layer_name(l, s.names.mlp_out_norm), base + Block::kDown);
    }
    for (const LinearPart& part : parts) {
      const std::string module = layer_name(l, part.name);
      expect(module + ".weight", {part.out, part.in}, true, base + part.step);
      if (part.bias) expect(module + ".bias", {part.out}, false, base + part.step);
      auto bias = params_.find(module + ".bias");
      linears_[module] = std::make_unique<nn::Linear>(module, params_.at(module + ".weight"),
                                                      bias == params_.end() ? nullptr : bias->second);
      module_depths_[module] = base + part.step;
    }
    module_depths_[layer_name(l, "attn_adapter")] = base + Block::kOutProj;  // on the attention's output
    module_depths_[layer_name(l, "mlp_adapter")] = base + Block::kDown;      // on the MLP's output
  }
  norm(s.names.final_norm, final_norm_depth(s.layers));
  if (!s.tied_head) expect(s.names.head + ".weight", {s.vocab, s.hidden}, true, head_depth(s.layers));
  // A tied head is a linear layer over the embedding table: its gradient adds into the table's.
  linears_[s.names.head] = std::make_unique<nn::Linear>(
      s.names.head, params_.at(s.tied_head ? embed + ".weight" : s.names.head + ".weight"), nullptr);
  module_depths_[s.names.head] = head_depth(s.layers);
  module_depths_["prefix_kv"] = layer_depth(0) + Block::kQkv;  // enters every layer's attention
}

void DecoderModel::build_blocks() {
  const DecoderSpec& s = spec_;
  auto norm = [&](const std::string& module) {
    auto bias = params_.find(module + ".bias");
    return nn::Norm(s.norm, params_.at(module + ".weight"), bias == params_.end() ? nullptr : bias->second, s.norm_eps,
                    s.norm_unit_offset);
  };
  for (int64_t l = 0; l < s.layers; ++l) {
    const bool sliding = s.sliding_window > 0 && (s.sliding_layers.empty() || s.sliding_layers[static_cast<size_t>(l)]);
    const double* inv_freq = !s.rope ? nullptr : sliding && !inv_freq_local_.empty() ? inv_freq_local_.data() : inv_freq_.data();
    const nn::AttentionConfig ac{s.hidden, s.heads, s.kv_heads, s.head_dim, inv_freq, sliding ? s.sliding_window : 0,
                                 s.attn_scale, s.attn_softcap};
    auto lin = [&](const std::string& part) -> const nn::Linear* {
      return part.empty() ? nullptr : linears_.at(layer_name(l, part)).get();
    };
    const bool fused = s.fused_qkv;
    nn::Attention attention(ac, l, fused ? nullptr : lin(s.names.q), fused ? nullptr : lin(s.names.k),
                            fused ? nullptr : lin(s.names.v), fused ? lin(s.names.qkv) : nullptr, lin(s.names.o));
    if (s.qk_norm) {
      auto head_norm = [&](const std::string& part) {
        return nn::Norm(nn::NormKind::Rms, params_.at(layer_name(l, part) + ".weight"), nullptr, s.norm_eps,
                        s.norm_unit_offset);
      };
      attention.set_head_norms(head_norm(s.names.q_norm), head_norm(s.names.k_norm));
    }
    const bool fused_mlp = s.fused_gate_up;
    nn::Mlp mlp;
    if (s.experts == 0)
      mlp = nn::Mlp(s.mlp, fused_mlp ? nullptr : lin(s.names.gate), fused_mlp ? nullptr : lin(s.names.up), lin(s.names.down),
                    fused_mlp ? lin(s.names.gate_up) : nullptr);
    blocks_.emplace_back(norm(layer_name(l, s.names.input_norm)), std::move(attention),
                         attn_sites_[static_cast<size_t>(l)].get(), norm(layer_name(l, s.names.post_norm)),
                         std::move(mlp), mlp_sites_[static_cast<size_t>(l)].get());
    if (s.experts > 0) {
      std::vector<nn::Mlp> experts;
      for (int64_t e = 0; e < s.experts; ++e) {
        const std::string expert = s.names.expert_prefix + std::to_string(e) + ".";
        experts.emplace_back(s.mlp, lin(expert + s.names.expert_gate), lin(expert + s.names.expert_up),
                             lin(expert + s.names.expert_down));
      }
      blocks_.back().set_moe(nn::Moe(lin(s.names.router), std::move(experts), s.experts_per_token, s.moe_normalize));
    }
    if (s.sandwich_norms)
      blocks_.back().set_sandwich_norms(norm(layer_name(l, s.names.attn_out_norm)), norm(layer_name(l, s.names.mlp_out_norm)));
  }
  final_norm_ = norm(s.names.final_norm);
}

Tensor DecoderModel::forward(const Tensor& ids, const Tensor* key_valid, bool train) {
  return run(ids, key_valid, train, false);
}

void DecoderModel::reset_cache(int64_t max_len) {
  const DecoderSpec& s = spec_;
  PEFT_CHECK(max_len >= 1, ErrorCode::Range, "Expected a cache length of at least 1 but received " + std::to_string(max_len));
  k_cache_.clear();
  v_cache_.clear();
  nn::ParamPtr prefix = active_prefix();
  const int64_t V = prefix ? prefix->value->dim(0) : 0, kv_dim = s.kv_heads * s.head_dim;
  const int64_t total = max_len + prompt_length() + V;
  for (int64_t l = 0; l < s.layers; ++l) {
    k_cache_.push_back(f32(ctx_, {total, s.kv_heads, s.head_dim}));
    v_cache_.push_back(f32(ctx_, {total, s.kv_heads, s.head_dim}));
    if (V) {  // the prefix's keys and values fill the first V positions
      nn::join_prefix(ctx_, *prefix, l, 0, s.layers, kv_dim, 1, 0, nullptr, p(k_cache_.back()));
      nn::join_prefix(ctx_, *prefix, l, 1, s.layers, kv_dim, 1, 0, nullptr, p(v_cache_.back()));
    }
  }
  cache_len_ = V;
  cache_prefix_ = V;
  cache_max_ = total;
}

Tensor DecoderModel::step(const Tensor& ids) {
  PEFT_CHECK(cache_max_ > 0, ErrorCode::Argument, "step() needs reset_cache() first");
  PEFT_CHECK(ids.ndim() == 2 && ids.dim(0) == 1 && ids.dim(1) >= 1, ErrorCode::Shape,
             "Expected ids of shape [1, T] for a cached step but received " + shape_to_string(ids.shape()));
  const int64_t added = ids.dim(1) + (cache_len_ == cache_prefix_ ? prompt_length() : 0);
  PEFT_CHECK(cache_len_ + added <= cache_max_, ErrorCode::Range,
             "Expected at most " + std::to_string(cache_max_) + " positions in the KV cache but this step would make " +
                 std::to_string(cache_len_ + added));
  return run(ids, nullptr, false, true);
}

void DecoderModel::embed(const Tensor& ids, const nn::Param* prompt, const nn::AdapterSelection& sel,
                         const int32_t* positions, int64_t B, int64_t T, float* x) const {
  PEFT_PROFILE_SCOPE(Embedding);
  embed_tokens(ctx_, weight(spec_.names.embed + ".weight"), prompt, embedding_lora_, sel, ids, B, T, spec_.hidden, x);
  if (spec_.learned_positions)
    add_position_embeddings(ctx_, weight(spec_.names.positions + ".weight"), positions, B * T, spec_.hidden, x);
  if (spec_.embed_scale > 0) ctx_.scale_values(B * T * spec_.hidden, spec_.embed_scale, x);
}

Tensor DecoderModel::run(const Tensor& ids, const Tensor* key_valid, bool train, bool use_cache, bool with_logits) {
  const DecoderSpec& s = spec_;
  PEFT_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I32, ErrorCode::Shape,
             "Expected i32 ids of shape [batch, seq] but received " + std::string(dtype_name(ids.dtype())) + " " +
                 shape_to_string(ids.shape()));
  if (key_valid) {
    PEFT_CHECK(key_valid->dtype() == DType::U8 && key_valid->shape() == ids.shape(), ErrorCode::Shape,
               "Expected a u8 attention mask of shape " + shape_to_string(ids.shape()) + " but received " +
                   dtype_name(key_valid->dtype()) + " " + shape_to_string(key_valid->shape()));
  }
  if (!selection_.per_row.empty())
    PEFT_CHECK(static_cast<int64_t>(selection_.per_row.size()) == ids.dim(0), ErrorCode::Shape,
               "Expected one adapter name per batch row (" + std::to_string(ids.dim(0)) + ") but received " +
                   std::to_string(selection_.per_row.size()));
  // Virtual tokens of a prompt adapter come first (with a cache: on the first step only).
  const nn::ParamPtr prompt = (use_cache && cache_len_ > cache_prefix_) ? nullptr : active_prompt();
  const int64_t P = prompt ? prompt->value->dim(0) : 0;
  // Virtual keys / values of a prefix adapter (with a cache they are already in it).
  const nn::ParamPtr prefix = use_cache ? nullptr : active_prefix();
  const int64_t V = prefix ? prefix->value->dim(0) : 0;
  const int64_t B = ids.dim(0), T = ids.dim(1) + P, M = B * T, H = s.hidden;
  const int64_t start = use_cache ? cache_len_ : V;  // position of the first new token (after any prefix)
  if (s.learned_positions)
    PEFT_CHECK(start + T <= s.learned_positions, ErrorCode::Range,
               "Expected at most " + std::to_string(s.learned_positions) + " positions (the learned position table's rows) but this needs " +
                   std::to_string(start + T));
  auto positions = std::make_shared<Tensor>(DType::I32, Shape{B, T});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) positions->data_as<int32_t>()[b * T + t] = static_cast<int32_t>(start + t);
  std::shared_ptr<Tensor> valid;  // the mask over all V + T keys (virtual ones are always valid)
  if (key_valid) {
    const int64_t S = V + T;
    valid = std::make_shared<Tensor>(DType::U8, Shape{B, S});
    for (int64_t b = 0; b < B; ++b) {
      std::memset(valid->data_as<uint8_t>() + b * S, 1, static_cast<size_t>(V + P));
      std::memcpy(valid->data_as<uint8_t>() + b * S + V + P, key_valid->data_as<uint8_t>() + b * (T - P),
                  static_cast<size_t>(T - P));
    }
  }
  nn::AttentionStep step;
  step.sel = selection_;
  step.sel.rows_per_item = T;
  step.sel.train = train && step.sel.dropout;  // an evaluation-mode loss runs no dropout
  step.batch = B;
  step.seq = T;
  step.kv_len = use_cache ? start + T : V + T;  // with the cache (batch 1): every cached key plus the new ones
  step.positions = positions->data_as<int32_t>();
  step.mask = kernels::AttentionMask{true, valid ? valid->data_as<uint8_t>() : nullptr};
  step.prefix = prefix.get();
  step.layers = s.layers;
  step.train = train;

  TensorPtr x = f32(ctx_, {M, H});
  embed(ids, prompt.get(), step.sel, step.positions, B, T, p(x));
  cache_.clear();
  for (int64_t l = 0; l < s.layers; ++l) {
    nn::BlockCache lc;
    nn::KvSlot slot{use_cache ? p(k_cache_[static_cast<size_t>(l)]) : nullptr,
                    use_cache ? p(v_cache_[static_cast<size_t>(l)]) : nullptr, start};
    TensorPtr next = blocks_[static_cast<size_t>(l)].forward(ctx_, step, x, lc, use_cache ? &slot : nullptr);
    if (train) {
      // With activation checkpointing a block keeps only its input; the backward recomputes the rest.
      if (checkpointing_) {
        nn::BlockCache input_only;
        input_only.x = lc.x;
        cache_.push_back(std::move(input_only));
      } else {
        cache_.push_back(std::move(lc));
      }
    }
    x = next;
  }
  TensorPtr normed = f32(ctx_, {M, H});
  nn::NormCache final_cache;
  {
    PEFT_PROFILE_SCOPE(NormAct);
    final_norm_.forward(ctx_, M, p(x), p(normed), final_cache);
  }
  const nn::Linear& head = *linears_.at(s.names.head);
  if (use_cache) {  // only the last position's logits: the next token's distribution
    cache_len_ += T;
    Tensor last = Tensor::uninitialized(DType::F32, {1, s.vocab});
    nn::AdapterSelection one = step.sel;
    one.rows_per_item = 1;
    head.forward(ctx_, one, 1, p(normed) + (M - 1) * H, last.data_as<float>(), nullptr);
    if (s.final_softcap > 0) ctx_.softcap_forward(1, s.vocab, s.vocab, s.final_softcap, last.data_as<float>());
    return last;
  }
  Tensor logits = with_logits ? Tensor::uninitialized(DType::F32, {B, T, s.vocab}) : Tensor::uninitialized(DType::F32, {0});
  if (with_logits) {
    PEFT_PROFILE_SCOPE(Head);
    head.forward(ctx_, step.sel, M, p(normed), logits.data_as<float>(), train ? &head_cache_ : nullptr);
    if (s.final_softcap > 0) ctx_.softcap_forward(M, s.vocab, s.vocab, s.final_softcap, logits.data_as<float>());
  }
  if (train) {
    train_step_ = step;
    train_prefix_ = prefix;  // keeps the step's prefix alive until the backward
    ids_ = std::make_shared<Tensor>(ids);
    key_valid_ = valid;
    positions_ = positions;
    final_input_ = x;
    final_norm_cache_ = final_cache;
    final_normed_ = normed;
    batch_ = B;
    seq_ = T;
    train_prompt_ = prompt;
  }
  return logits;
}

int DecoderModel::begin_backward(bool accumulate) {
  if (!accumulate)
    for (auto& [name, param] : params_) param->zero_grad();
  // The lowest point of the network that trains: gradients stop flowing below it.
  int lowest = kNoTrainable;
  for (auto& [name, param] : params_)
    if (param->trainable) lowest = std::min(lowest, param->depth);
  return lowest;
}

void DecoderModel::check_labels(const Tensor& labels) const {
  PEFT_CHECK(final_input_ != nullptr, ErrorCode::Argument, "loss_backward needs a forward with train = true first");
  PEFT_CHECK(labels.dtype() == DType::I32 && labels.shape() == Shape({batch_, seq_}), ErrorCode::Shape,
             "Expected i32 labels of shape " + shape_to_string({batch_, seq_}) + " but received " +
                 dtype_name(labels.dtype()) + " " + shape_to_string(labels.shape()));
}

double DecoderModel::loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) {
  const DecoderSpec& s = spec_;
  check_labels(labels);
  const int64_t M = batch_ * seq_, H = s.hidden;
  PEFT_CHECK(logits.shape() == Shape({batch_, seq_, s.vocab}), ErrorCode::Shape, "logits do not match the last forward");
  const int lowest = begin_backward(accumulate);
  const std::vector<int32_t> targets = next_token_targets(labels, batch_, seq_);
  TensorPtr dlogits = f32(ctx_, {M, s.vocab});
  std::vector<float> row_loss(static_cast<size_t>(M));
  const kernels::CrossEntropyResult ce = [&] {
    PEFT_PROFILE_SCOPE(Loss);
    return ctx_.cross_entropy(M, s.vocab, logits.data_as<float>(), targets.data(), -100, 0.0, row_loss.data(),
                                  p(dlogits));
  }();
  const double loss = ce.count ? ce.loss_sum / static_cast<double>(ce.count) : 0.0;
  if (lowest == kNoTrainable) return loss;
  if (s.final_softcap > 0)  // through the cap: the logits given are the capped ones
    ctx_.softcap_backward(M, s.vocab, s.vocab, s.final_softcap, logits.data_as<float>(), p(dlogits));
  TensorPtr d_normed = lowest < head_depth(s.layers) ? f32(ctx_, {M, H}) : nullptr;
  {
    PEFT_PROFILE_SCOPE(Head);
    linears_.at(s.names.head)->backward(ctx_, train_step_.sel, M, p(dlogits), p(final_normed_), head_cache_, p(d_normed), false);
  }
  dlogits.reset();
  backward_trunk(d_normed, lowest);
  return loss;
}

double DecoderModel::train_loss(const Tensor& ids, const Tensor* key_valid, const Tensor& labels, bool accumulate) {
  const DecoderSpec& s = spec_;
  const nn::Linear& head = *linears_.at(s.names.head);
  // Adapters on the head keep per-row state (dropout masks by row, DoRA norms): the whole-batch path.
  if (!head.lora().empty() || !head.ia3().empty()) return AdapterHost::train_loss(ids, key_valid, labels, accumulate);
  run(ids, key_valid, true, false, false);
  check_labels(labels);
  const int64_t M = batch_ * seq_, H = s.hidden;
  const int lowest = begin_backward(accumulate);
  const std::vector<int32_t> targets = next_token_targets(labels, batch_, seq_);
  TensorPtr d_normed = lowest < head_depth(s.layers) ? f32(ctx_, {M, H}) : nullptr;
  const bool backward = lowest != kNoTrainable;
  const double loss =
      blocked_head_loss(ctx_, head, train_step_.sel, M, H, s.vocab, p(final_normed_), targets, backward, p(d_normed), s.final_softcap);
  if (backward) backward_trunk(d_normed, lowest);
  return loss;
}

void DecoderModel::backward_trunk(const std::shared_ptr<Tensor>& d_normed, int lowest) {
  const DecoderSpec& s = spec_;
  const int64_t B = batch_, T = seq_, M = B * T, H = s.hidden;
  const int final_depth = final_norm_depth(s.layers);
  if (lowest > final_depth) return;
  TensorPtr dx = f32(ctx_, {M, H});
  {
    PEFT_PROFILE_SCOPE(NormAct);
    final_norm_.backward(ctx_, M, p(d_normed), p(final_input_), final_norm_cache_, lowest < final_depth ? p(dx) : nullptr);
  }
  if (lowest >= final_depth) return;
  nn::Workspace ws;
  for (int64_t l = s.layers - 1; l >= 0; --l) {
    const nn::BlockCache& kept = cache_[static_cast<size_t>(l)];
    nn::BlockCache recomputed;
    if (!kept.complete())  // checkpointed: run the block again from its input
      blocks_[static_cast<size_t>(l)].forward(ctx_, train_step_, kept.x, recomputed, nullptr);
    const nn::BlockCache& lc = kept.complete() ? kept : recomputed;
    if (!blocks_[static_cast<size_t>(l)].backward(ctx_, train_step_, lc, lowest - layer_depth(l), p(dx), ws)) return;
  }
  // dx holds d(embeddings): virtual tokens first, then the looked-up rows (and their positions).
  PEFT_PROFILE_SCOPE(Embedding);
  if (s.embed_scale > 0) ctx_.scale_values(M * H, s.embed_scale, p(dx));
  if (s.learned_positions)
    position_embeddings_backward(ctx_, parameter(s.names.positions + ".weight"), positions_->data_as<int32_t>(), M, H, p(dx));
  embed_tokens_backward(ctx_, parameter(s.names.embed + ".weight"), train_prompt_.get(), embedding_lora_, train_step_.sel, *ids_,
                        B, T, H, p(dx));
}

}  // namespace peft::model
