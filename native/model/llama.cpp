#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/profile.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/embedding.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/rope.h"
#include "model/decoder_parts.h"
#include "model/head_loss.h"
#include "model/param_depth.h"

namespace peft::model {

namespace {

using TensorPtr = std::shared_ptr<Tensor>;

TensorPtr f32(const Shape& shape) { return std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, shape)); }
float* p(const TensorPtr& t) { return t->data_as<float>(); }

void add_into(int64_t n, const float* src, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

const char* const kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

}  // namespace

struct LlamaModel::LayerCache {
  TensorPtr x, rstd1, n1, q, k, v, attn, lse, x2, rstd2, n2, gate, up, act;
  TensorPtr k_all, v_all;  // with a prefix: [B, P + T, kv_heads, head_dim], virtual then token keys / values
  TensorPtr attn_out, mlp_out;  // sublayer outputs before bottleneck adapters (only with adapters)
  nn::LinearCache q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
  nn::BottleneckCache attn_adapters, mlp_adapters;
};

namespace {

HostDims llama_dims(const LlamaConfig& c) {
  return HostDims{c.hidden, c.vocab, c.layers, c.kv_heads * c.head_dim, c.tie_embeddings, "model.embed_tokens", "model.layers."};
}

}  // namespace

LlamaModel::LlamaModel(LlamaConfig config, TensorMap weights, nn::QuantWeightMap quantized)
    : AdapterHost(llama_dims(config)), config_(std::move(config)) {
  const LlamaConfig& c = config_;
  PEFT_CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.kv_heads > 0 && c.heads % c.kv_heads == 0 &&
                 c.head_dim > 0 && c.head_dim % 2 == 0 && c.vocab > 0 && c.intermediate > 0,
             ErrorCode::Config, "Expected positive sizes, heads a multiple of kv heads and an even head_dim in the model config");
  PEFT_CHECK(c.rope_freq_scale.empty() || static_cast<int64_t>(c.rope_freq_scale.size()) == c.head_dim / 2,
             ErrorCode::Config, "Expected head_dim / 2 RoPE frequency factors");
  const std::vector<std::string> names = parameter_names();
  for (const auto& [name, q] : quantized) {
    const bool block_linear = name.compare(0, 13, "model.layers.") == 0 && name.size() > 12 &&
                              name.compare(name.size() - 12, 12, "_proj.weight") == 0;
    PEFT_CHECK(block_linear && std::find(names.begin(), names.end(), name) != names.end(), ErrorCode::Config,
               "Expected 4-bit weights only for the linear layers of the blocks (q/k/v/o_proj, gate/up/down_proj) but "
               "received one for " + name);
    PEFT_CHECK(q != nullptr, ErrorCode::Argument, "No 4-bit weight given for " + name);
    q->validate(name);
  }
  for (const std::string& name : names) {
    auto qit = quantized.find(name);
    if (qit != quantized.end()) {  // a 4-bit weight: frozen, its packed codes stand as the value
      auto param = std::make_shared<nn::Param>(name, qit->second->packed);
      param->quant = qit->second;
      params_[name] = param;
      continue;
    }
    auto it = weights.find(name);
    PEFT_CHECK(it != weights.end(), ErrorCode::Config, "The weights have no tensor " + name + ", which the config needs");
    auto param = std::make_shared<nn::Param>(name, it->second);
    param->trainable = it->second->dtype() == DType::F32;  // everything trains until a PEFT method freezes it
    params_[name] = param;
  }
  auto expect = [&](const std::string& name, const Shape& shape, bool linear_weight) {
    if (const nn::QuantWeight* q = parameter(name).quant.get()) {
      PEFT_CHECK(q->shape == shape, ErrorCode::Config,
                 "Expected shape " + shape_to_string(shape) + " for " + name + " (from the config) but the 4-bit weight has " +
                     shape_to_string(q->shape));
      return;
    }
    const Tensor& t = weight(name);
    PEFT_CHECK(t.shape() == shape, ErrorCode::Config,
               "Expected shape " + shape_to_string(shape) + " for " + name + " (from the config) but the weights have " +
                   shape_to_string(t.shape()));
    PEFT_CHECK(t.dtype() == DType::F32 || (linear_weight && t.dtype() == DType::BF16), ErrorCode::DType,
               std::string("Expected f32") + (linear_weight ? " or bf16" : "") + " for " + name + " but received " +
                   dtype_name(t.dtype()));
    PEFT_CHECK(t.is_contiguous(), ErrorCode::Argument, name + " is not contiguous");
  };
  const int64_t q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
  expect("model.embed_tokens.weight", {c.vocab, c.hidden}, true);  // bf16 allowed: rows are converted on lookup
  expect("model.norm.weight", {c.hidden}, false);
  if (!c.tie_embeddings) expect("lm_head.weight", {c.vocab, c.hidden}, true);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    expect(pre + "input_layernorm.weight", {c.hidden}, false);
    expect(pre + "post_attention_layernorm.weight", {c.hidden}, false);
    expect(pre + "self_attn.q_proj.weight", {q_dim, c.hidden}, true);
    expect(pre + "self_attn.k_proj.weight", {kv_dim, c.hidden}, true);
    expect(pre + "self_attn.v_proj.weight", {kv_dim, c.hidden}, true);
    expect(pre + "self_attn.o_proj.weight", {c.hidden, q_dim}, true);
    if (c.attention_bias) {
      expect(pre + "self_attn.q_proj.bias", {q_dim}, false);
      expect(pre + "self_attn.k_proj.bias", {kv_dim}, false);
      expect(pre + "self_attn.v_proj.bias", {kv_dim}, false);
    }
    expect(pre + "mlp.gate_proj.weight", {c.intermediate, c.hidden}, true);
    expect(pre + "mlp.up_proj.weight", {c.intermediate, c.hidden}, true);
    expect(pre + "mlp.down_proj.weight", {c.hidden, c.intermediate}, true);
    for (const char* name : kLinears) {
      const std::string module = pre + name;
      auto bias = params_.find(module + ".bias");
      linears_[module] = std::make_unique<nn::Linear>(module, params_.at(module + ".weight"),
                                                      bias == params_.end() ? nullptr : bias->second);
    }
  }
  // A tied head is a linear layer over the embedding table: its gradient adds into the table's.
  linears_["lm_head"] = std::make_unique<nn::Linear>(
      "lm_head", params_.at(c.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"), nullptr);
  inv_freq_.resize(c.head_dim / 2);
  kernels::rope_inv_freq(c.head_dim, c.rope_theta, c.rope_freq_scale.empty() ? nullptr : c.rope_freq_scale.data(),
                         inv_freq_.data());
}

LlamaModel::~LlamaModel() = default;

std::vector<std::string> LlamaModel::parameter_names() const {
  const LlamaConfig& c = config_;
  std::vector<std::string> names = {"model.embed_tokens.weight"};
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    names.push_back(pre + "input_layernorm.weight");
    for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
      names.push_back(pre + "self_attn." + proj + ".weight");
      if (c.attention_bias) names.push_back(pre + "self_attn." + proj + ".bias");
    }
    names.push_back(pre + "self_attn.o_proj.weight");
    names.push_back(pre + "post_attention_layernorm.weight");
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) names.push_back(pre + "mlp." + proj + ".weight");
  }
  names.push_back("model.norm.weight");
  if (!c.tie_embeddings) names.push_back("lm_head.weight");
  return names;
}

Tensor LlamaModel::forward(const Tensor& ids, const Tensor* key_valid, bool train) {
  return run(ids, key_valid, train, false);
}

void LlamaModel::reset_cache(int64_t max_len) {
  const LlamaConfig& c = config_;
  PEFT_CHECK(max_len >= 1, ErrorCode::Range, "Expected a cache length of at least 1 but received " + std::to_string(max_len));
  k_cache_.clear();
  v_cache_.clear();
  nn::ParamPtr prefix = active_prefix();
  const int64_t P = prefix ? prefix->value->dim(0) : 0, kv_dim = c.kv_heads * c.head_dim;
  const int64_t total = max_len + prompt_length() + P;
  for (int64_t l = 0; l < c.layers; ++l) {
    k_cache_.push_back(f32({total, c.kv_heads, c.head_dim}));
    v_cache_.push_back(f32({total, c.kv_heads, c.head_dim}));
    // The prefix's keys and values fill the first P positions.
    for (int64_t t = 0; t < P; ++t) {
      const float* row = prefix->data() + t * c.layers * 2 * kv_dim;
      std::memcpy(p(k_cache_.back()) + t * kv_dim, row + (2 * l) * kv_dim, sizeof(float) * kv_dim);
      std::memcpy(p(v_cache_.back()) + t * kv_dim, row + (2 * l + 1) * kv_dim, sizeof(float) * kv_dim);
    }
  }
  cache_len_ = P;
  cache_prefix_ = P;
  cache_max_ = total;
}

Tensor LlamaModel::step(const Tensor& ids) {
  PEFT_CHECK(cache_max_ > 0, ErrorCode::Argument, "step() needs reset_cache() first");
  PEFT_CHECK(ids.ndim() == 2 && ids.dim(0) == 1 && ids.dim(1) >= 1, ErrorCode::Shape,
             "Expected ids of shape [1, T] for a cached step but received " + shape_to_string(ids.shape()));
  const int64_t added = ids.dim(1) + (cache_len_ == cache_prefix_ ? prompt_length() : 0);
  PEFT_CHECK(cache_len_ + added <= cache_max_, ErrorCode::Range,
             "Expected at most " + std::to_string(cache_max_) + " positions in the KV cache but this step would make " +
                 std::to_string(cache_len_ + added));
  return run(ids, nullptr, false, true);
}

TensorPtr LlamaModel::layer_forward(int64_t l, const Step& s, TensorPtr x, LayerCache& lc) const {
  const LlamaConfig& c = config_;
  const int64_t B = s.B, T = s.T, V = s.V, M = B * T, H = c.hidden, D = c.head_dim;
  const int64_t q_dim = c.heads * D, kv_dim = c.kv_heads * D, F = c.intermediate;
  const std::string pre = "model.layers." + std::to_string(l) + ".";
  auto lin = [&](const char* name) -> const nn::Linear& { return *linears_.at(pre + name); };
  auto kept = [&](nn::LinearCache& cache) { return s.train ? &cache : nullptr; };
  lc.x = x;
  lc.rstd1 = f32({M});
  lc.n1 = f32({M, H});
  {
    PEFT_PROFILE_SCOPE(NormAct);
    kernels::rmsnorm_forward(M, H, p(x), weight_f32(pre + "input_layernorm.weight"), c.rms_eps, p(lc.n1), p(lc.rstd1));
  }
  lc.q = f32({M, q_dim});
  lc.k = f32({M, kv_dim});
  lc.v = f32({M, kv_dim});
  {
    PEFT_PROFILE_SCOPE(Gemm);
    lin("self_attn.q_proj").forward(s.sel, M, p(lc.n1), p(lc.q), kept(lc.q_proj));
    lin("self_attn.k_proj").forward(s.sel, M, p(lc.n1), p(lc.k), kept(lc.k_proj));
    lin("self_attn.v_proj").forward(s.sel, M, p(lc.n1), p(lc.v), kept(lc.v_proj));
  }
  {
    PEFT_PROFILE_SCOPE(NormAct);
    kernels::rope_apply(s.q_shape, p(lc.q), s.positions->data_as<int32_t>(), inv_freq_.data(), false, p(lc.q));
    kernels::rope_apply(s.k_shape, p(lc.k), s.positions->data_as<int32_t>(), inv_freq_.data(), false, p(lc.k));
  }
  lc.attn = f32({M, q_dim});
  lc.lse = f32({B, c.heads, T});
  const float* keys = p(lc.k);
  const float* values = p(lc.v);
  if (V) {  // keys and values: the prefix's, then the tokens', per batch row
    lc.k_all = f32({B, V + T, c.kv_heads, D});
    lc.v_all = f32({B, V + T, c.kv_heads, D});
    join_prefix(*s.prefix, l, 0, c.layers, kv_dim, B, T, p(lc.k), p(lc.k_all));
    join_prefix(*s.prefix, l, 1, c.layers, kv_dim, B, T, p(lc.v), p(lc.v_all));
    keys = p(lc.k_all);
    values = p(lc.v_all);
  }
  if (s.use_cache) {
    float* kc = p(k_cache_[static_cast<size_t>(l)]);
    float* vc = p(v_cache_[static_cast<size_t>(l)]);
    std::memcpy(kc + s.start * kv_dim, p(lc.k), sizeof(float) * T * kv_dim);
    std::memcpy(vc + s.start * kv_dim, p(lc.v), sizeof(float) * T * kv_dim);
    keys = kc;
    values = vc;
  }
  {
    PEFT_PROFILE_SCOPE(Attention);
    kernels::attention_forward(s.as, s.mask, s.scale, p(lc.q), keys, values, p(lc.attn), p(lc.lse));
  }
  lc.x2 = f32({M, H});
  {
    PEFT_PROFILE_SCOPE(Gemm);
    lin("self_attn.o_proj").forward(s.sel, M, p(lc.attn), p(lc.x2), kept(lc.o_proj));
  }
  const nn::BottleneckSite& attn_site = *attn_sites_[static_cast<size_t>(l)];
  if (!attn_site.empty()) {  // o += adapter(o) (sequential) + adapter(n1) (parallel)
    lc.attn_out = f32({M, H});
    std::memcpy(p(lc.attn_out), p(lc.x2), sizeof(float) * M * H);
    attn_site.forward(s.sel, false, M, p(lc.attn_out), p(lc.x2), s.train ? &lc.attn_adapters : nullptr);
    attn_site.forward(s.sel, true, M, p(lc.n1), p(lc.x2), s.train ? &lc.attn_adapters : nullptr);
  }
  add_into(M * H, p(x), p(lc.x2));
  lc.rstd2 = f32({M});
  lc.n2 = f32({M, H});
  {
    PEFT_PROFILE_SCOPE(NormAct);
    kernels::rmsnorm_forward(M, H, p(lc.x2), weight_f32(pre + "post_attention_layernorm.weight"), c.rms_eps, p(lc.n2),
                             p(lc.rstd2));
  }
  lc.gate = f32({M, F});
  lc.up = f32({M, F});
  lc.act = f32({M, F});
  {
    PEFT_PROFILE_SCOPE(Gemm);
    lin("mlp.gate_proj").forward(s.sel, M, p(lc.n2), p(lc.gate), kept(lc.gate_proj));
    lin("mlp.up_proj").forward(s.sel, M, p(lc.n2), p(lc.up), kept(lc.up_proj));
  }
  {
    PEFT_PROFILE_SCOPE(NormAct);
    kernels::swiglu_forward(M * F, p(lc.gate), p(lc.up), p(lc.act));
  }
  TensorPtr next = f32({M, H});
  {
    PEFT_PROFILE_SCOPE(Gemm);
    lin("mlp.down_proj").forward(s.sel, M, p(lc.act), p(next), kept(lc.down_proj));
  }
  const nn::BottleneckSite& mlp_site = *mlp_sites_[static_cast<size_t>(l)];
  if (!mlp_site.empty()) {  // m += adapter(m) (sequential) + adapter(n2) (parallel)
    lc.mlp_out = f32({M, H});
    std::memcpy(p(lc.mlp_out), p(next), sizeof(float) * M * H);
    mlp_site.forward(s.sel, false, M, p(lc.mlp_out), p(next), s.train ? &lc.mlp_adapters : nullptr);
    mlp_site.forward(s.sel, true, M, p(lc.n2), p(next), s.train ? &lc.mlp_adapters : nullptr);
  }
  add_into(M * H, p(lc.x2), p(next));
  return next;
}

Tensor LlamaModel::run(const Tensor& ids, const Tensor* key_valid, bool train, bool use_cache, bool with_logits) {
  const LlamaConfig& c = config_;
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
  const int64_t B = ids.dim(0), T = ids.dim(1) + P, M = B * T, H = c.hidden, D = c.head_dim;
  nn::AdapterSelection sel = selection_;
  sel.rows_per_item = T;
  sel.train = train && sel.dropout;  // an evaluation-mode loss runs no dropout

  auto positions = std::make_shared<Tensor>(DType::I32, Shape{B, T});
  const int64_t start = use_cache ? cache_len_ : V;  // position of the first new token (after any prefix)
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

  TensorPtr x = f32({M, H});
  {
    PEFT_PROFILE_SCOPE(Embedding);
    embed_tokens(weight("model.embed_tokens.weight"), prompt.get(), embedding_lora_, sel, ids, B, T, H, p(x));
  }
  cache_.clear();
  // With the cache (batch 1) the queries attend to every cached key plus the new ones.
  Step step{sel, B, T, V, start, use_cache, train, positions, valid, prefix,
            kernels::AttentionShape{B, T, use_cache ? start + T : V + T, c.heads, c.kv_heads, D},
            kernels::AttentionMask{true, valid ? valid->data_as<uint8_t>() : nullptr},
            kernels::RopeShape{B, T, c.heads, D}, kernels::RopeShape{B, T, c.kv_heads, D},
            static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)))};
  for (int64_t l = 0; l < c.layers; ++l) {
    LayerCache lc;
    TensorPtr next = layer_forward(l, step, x, lc);
    if (train) {
      // With activation checkpointing a layer keeps only its input; the backward recomputes the rest.
      if (checkpointing_) {
        LayerCache input_only;
        input_only.x = lc.x;
        cache_.push_back(std::move(input_only));
      } else {
        cache_.push_back(std::move(lc));
      }
    }
    x = next;
  }
  TensorPtr rstd = f32({M}), normed = f32({M, H});
  {
    PEFT_PROFILE_SCOPE(NormAct);
    kernels::rmsnorm_forward(M, H, p(x), weight_f32("model.norm.weight"), c.rms_eps, p(normed), p(rstd));
  }
  const nn::Linear& head = *linears_.at("lm_head");
  if (use_cache) {  // only the last position's logits: the next token's distribution
    cache_len_ += T;
    Tensor last = Tensor::uninitialized(DType::F32, {1, c.vocab});
    nn::AdapterSelection one = sel;
    one.rows_per_item = 1;
    head.forward(one, 1, p(normed) + (M - 1) * H, last.data_as<float>(), nullptr);
    return last;
  }
  Tensor logits = with_logits ? Tensor::uninitialized(DType::F32, {B, T, c.vocab}) : Tensor::uninitialized(DType::F32, {0});
  if (with_logits) {
    PEFT_PROFILE_SCOPE(Head);
    head.forward(sel, M, p(normed), logits.data_as<float>(), train ? &head_cache_ : nullptr);
  }
  if (train) {
    train_step_ = step;
    train_selection_ = sel;
    ids_ = std::make_shared<Tensor>(ids);
    key_valid_ = valid;
    positions_ = positions;
    final_input_ = x;
    final_rstd_ = rstd;
    final_normed_ = normed;
    batch_ = B;
    seq_ = T;
    prompt_len_ = P;
    train_prompt_ = prompt;
    train_prefix_ = prefix;
  }
  return logits;
}

int LlamaModel::begin_backward(bool accumulate) {
  if (!accumulate)
    for (auto& [name, param] : params_) param->zero_grad();
  // The lowest point of the network that trains: gradients stop flowing below it.
  int lowest = kNoTrainable;
  for (auto& [name, param] : params_)
    if (param->trainable) lowest = std::min(lowest, param_depth(name, config_.layers));
  return lowest;
}

void LlamaModel::check_labels(const Tensor& labels) const {
  PEFT_CHECK(final_input_ != nullptr, ErrorCode::Argument, "loss_backward needs a forward with train = true first");
  PEFT_CHECK(labels.dtype() == DType::I32 && labels.shape() == Shape({batch_, seq_}), ErrorCode::Shape,
             "Expected i32 labels of shape " + shape_to_string({batch_, seq_}) + " but received " +
                 dtype_name(labels.dtype()) + " " + shape_to_string(labels.shape()));
}

double LlamaModel::loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) {
  const LlamaConfig& c = config_;
  check_labels(labels);
  const int64_t M = batch_ * seq_, H = c.hidden;
  PEFT_CHECK(logits.shape() == Shape({batch_, seq_, c.vocab}), ErrorCode::Shape, "logits do not match the last forward");
  const int lowest = begin_backward(accumulate);
  const std::vector<int32_t> targets = next_token_targets(labels, batch_, seq_);
  TensorPtr dlogits = f32({M, c.vocab});
  std::vector<float> row_loss(static_cast<size_t>(M));
  const kernels::CrossEntropyResult ce = [&] {
    PEFT_PROFILE_SCOPE(Loss);
    return kernels::cross_entropy(M, c.vocab, logits.data_as<float>(), targets.data(), -100, 0.0, row_loss.data(),
                                  p(dlogits));
  }();
  const double loss = ce.count ? ce.loss_sum / static_cast<double>(ce.count) : 0.0;
  if (lowest == kNoTrainable) return loss;
  TensorPtr d_normed = lowest < head_depth(c.layers) ? f32({M, H}) : nullptr;
  {
    PEFT_PROFILE_SCOPE(Head);
    linears_.at("lm_head")->backward(train_selection_, M, p(dlogits), p(final_normed_), head_cache_,
                                     d_normed ? p(d_normed) : nullptr, false);
  }
  dlogits.reset();
  backward_trunk(d_normed, lowest);
  return loss;
}

double LlamaModel::train_loss(const Tensor& ids, const Tensor* key_valid, const Tensor& labels, bool accumulate) {
  const LlamaConfig& c = config_;
  const nn::Linear& head = *linears_.at("lm_head");
  // Adapters on the head keep per-row state (dropout masks by row, DoRA norms): the whole-batch path.
  if (!head.lora().empty() || !head.ia3().empty()) return AdapterHost::train_loss(ids, key_valid, labels, accumulate);
  run(ids, key_valid, true, false, false);
  check_labels(labels);
  const int64_t M = batch_ * seq_, H = c.hidden, vocab = c.vocab;
  const int lowest = begin_backward(accumulate);
  const std::vector<int32_t> targets = next_token_targets(labels, batch_, seq_);
  TensorPtr d_normed = lowest < head_depth(c.layers) ? f32({M, H}) : nullptr;
  const bool backward = lowest != kNoTrainable;
  const double loss = blocked_head_loss(head, train_selection_, M, H, vocab, p(final_normed_), targets, backward,
                                        d_normed ? p(d_normed) : nullptr);
  if (backward) backward_trunk(d_normed, lowest);
  return loss;
}

void LlamaModel::backward_trunk(const std::shared_ptr<Tensor>& d_normed, int lowest) {
  const LlamaConfig& c = config_;
  const int64_t B = batch_, T = seq_, M = B * T, H = c.hidden, D = c.head_dim, F = c.intermediate;
  const int64_t q_dim = c.heads * D, kv_dim = c.kv_heads * D;
  const nn::AdapterSelection& sel = train_selection_;
  auto need = [&](int depth) { return lowest < depth; };   // does anything below this point train?
  auto reach = [&](int depth) { return lowest <= depth; };  // does this point or anything below train?
  if (!reach(final_norm_depth(c.layers))) return;
  TensorPtr dx = f32({M, H});
  nn::Param& final_norm = parameter("model.norm.weight");
  {
    PEFT_PROFILE_SCOPE(NormAct);
    kernels::rmsnorm_backward(M, H, p(d_normed), p(final_input_), final_norm.data(), p(final_rstd_),
                              need(final_norm_depth(c.layers)) ? p(dx) : nullptr, final_norm.grad_data(), true);
  }
  if (!need(final_norm_depth(c.layers))) return;

  const int64_t V = train_prefix_ ? train_prefix_->value->dim(0) : 0, S = V + T;
  const kernels::AttentionShape as{B, T, S, c.heads, c.kv_heads, D};
  TensorPtr dk_all = V ? f32({B * S, kv_dim}) : nullptr, dv_all = V ? f32({B * S, kv_dim}) : nullptr;
  const kernels::AttentionMask mask{true, key_valid_ ? key_valid_->data_as<uint8_t>() : nullptr};
  const kernels::RopeShape q_shape{B, T, c.heads, D}, k_shape{B, T, c.kv_heads, D};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  TensorPtr d_act = f32({M, F}), d_gate = f32({M, F}), d_up = f32({M, F}), d_n = f32({M, H}), d_attn = f32({M, q_dim});
  TensorPtr dq = f32({M, q_dim}), dk = f32({M, kv_dim}), dv = f32({M, kv_dim}), dx2 = f32({M, H});
  for (int64_t l = c.layers - 1; l >= 0; --l) {
    LayerCache recomputed;
    if (!cache_[static_cast<size_t>(l)].n1)  // checkpointed: run the layer again from its input
      layer_forward(l, train_step_, cache_[static_cast<size_t>(l)].x, recomputed);
    const LayerCache& lc = cache_[static_cast<size_t>(l)].n1 ? cache_[static_cast<size_t>(l)] : recomputed;
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    auto lin = [&](const char* name) -> const nn::Linear& { return *linears_.at(pre + name); };
    const int base = layer_depth(l);
    // MLP: x3 = x2 + down(swiglu(gate(n2), up(n2))), n2 = norm(x2). dx holds d x3.
    std::memcpy(p(dx2), p(dx), sizeof(float) * M * H);
    const nn::BottleneckSite& mlp_site = *mlp_sites_[static_cast<size_t>(l)];
    std::vector<float> d_n_parallel;  // parallel adapters' gradient into n2
    const float* d_mlp = p(dx);
    std::vector<float> d_mlp_out;
    if (!mlp_site.empty()) {
      d_mlp_out.assign(p(dx), p(dx) + M * H);  // the sequential adapters' input is the down_proj output
      mlp_site.backward(sel, false, M, p(dx), p(lc.mlp_out), lc.mlp_adapters, d_mlp_out.data());
      d_n_parallel.assign(static_cast<size_t>(M * H), 0.0f);
      mlp_site.backward(sel, true, M, p(dx), p(lc.n2), lc.mlp_adapters, d_n_parallel.data());
      d_mlp = d_mlp_out.data();
    }
    {
      PEFT_PROFILE_SCOPE(Gemm);
      lin("mlp.down_proj").backward(sel, M, d_mlp, p(lc.act), lc.down_proj, need(base + kDown) ? p(d_act) : nullptr, false);
    }
    if (need(base + kDown)) {
      {
        PEFT_PROFILE_SCOPE(NormAct);
        kernels::swiglu_backward(M * F, p(d_act), p(lc.gate), p(lc.up), p(d_gate), p(d_up));
      }
      const bool want_dn = need(base + kGateUp);
      {
        PEFT_PROFILE_SCOPE(Gemm);
        lin("mlp.gate_proj").backward(sel, M, p(d_gate), p(lc.n2), lc.gate_proj, want_dn ? p(d_n) : nullptr, false);
        lin("mlp.up_proj").backward(sel, M, p(d_up), p(lc.n2), lc.up_proj, want_dn ? p(d_n) : nullptr, true);
      }
      if (want_dn) {
        if (!d_n_parallel.empty()) add_into(M * H, d_n_parallel.data(), p(d_n));
        nn::Param& norm = parameter(pre + "post_attention_layernorm.weight");
        std::vector<float> d_x2(static_cast<size_t>(M * H));
        {
          PEFT_PROFILE_SCOPE(NormAct);
          kernels::rmsnorm_backward(M, H, p(d_n), p(lc.x2), norm.data(), p(lc.rstd2),
                                    need(base + kPostNorm) ? d_x2.data() : nullptr, norm.grad_data(), true);
        }
        if (need(base + kPostNorm)) add_into(M * H, d_x2.data(), p(dx2));
      }
    }
    if (!reach(base + kOutProj)) return;
    // Attention: x2 = x + o_proj(attn(rope(q), rope(k), v)), q/k/v from n1 = norm(x). dx2 holds d x2.
    const nn::BottleneckSite& attn_site = *attn_sites_[static_cast<size_t>(l)];
    std::vector<float> d_n1_parallel, d_attn_out;
    const float* d_o = p(dx2);
    if (!attn_site.empty()) {
      d_attn_out.assign(p(dx2), p(dx2) + M * H);
      attn_site.backward(sel, false, M, p(dx2), p(lc.attn_out), lc.attn_adapters, d_attn_out.data());
      d_n1_parallel.assign(static_cast<size_t>(M * H), 0.0f);
      attn_site.backward(sel, true, M, p(dx2), p(lc.n1), lc.attn_adapters, d_n1_parallel.data());
      d_o = d_attn_out.data();
    }
    {
      PEFT_PROFILE_SCOPE(Gemm);
      lin("self_attn.o_proj").backward(sel, M, d_o, p(lc.attn), lc.o_proj, need(base + kOutProj) ? p(d_attn) : nullptr,
                                       false);
    }
    if (!need(base + kOutProj)) return;
    if (V) {
      PEFT_PROFILE_SCOPE(Attention);
      kernels::attention_backward(as, mask, scale, p(lc.q), p(lc.k_all), p(lc.v_all), p(lc.attn), p(d_attn), p(lc.lse),
                                  p(dq), p(dk_all), p(dv_all));
      split_prefix_grad(*train_prefix_, l, 0, c.layers, kv_dim, B, T, p(dk_all), p(dk));
      split_prefix_grad(*train_prefix_, l, 1, c.layers, kv_dim, B, T, p(dv_all), p(dv));
    } else {
      PEFT_PROFILE_SCOPE(Attention);
      kernels::attention_backward(as, mask, scale, p(lc.q), p(lc.k), p(lc.v), p(lc.attn), p(d_attn), p(lc.lse), p(dq),
                                  p(dk), p(dv));
    }
    {
      PEFT_PROFILE_SCOPE(NormAct);
      kernels::rope_apply(q_shape, p(dq), positions_->data_as<int32_t>(), inv_freq_.data(), true, p(dq));
      kernels::rope_apply(k_shape, p(dk), positions_->data_as<int32_t>(), inv_freq_.data(), true, p(dk));
    }
    const bool want_dn = need(base + kQkv);
    {
      PEFT_PROFILE_SCOPE(Gemm);
      lin("self_attn.q_proj").backward(sel, M, p(dq), p(lc.n1), lc.q_proj, want_dn ? p(d_n) : nullptr, false);
      lin("self_attn.k_proj").backward(sel, M, p(dk), p(lc.n1), lc.k_proj, want_dn ? p(d_n) : nullptr, true);
      lin("self_attn.v_proj").backward(sel, M, p(dv), p(lc.n1), lc.v_proj, want_dn ? p(d_n) : nullptr, true);
    }
    if (!want_dn) return;
    if (!d_n1_parallel.empty()) add_into(M * H, d_n1_parallel.data(), p(d_n));
    nn::Param& norm = parameter(pre + "input_layernorm.weight");
    {
      PEFT_PROFILE_SCOPE(NormAct);
      kernels::rmsnorm_backward(M, H, p(d_n), p(lc.x), norm.data(), p(lc.rstd1), need(base + kInputNorm) ? p(dx) : nullptr,
                                norm.grad_data(), true);
    }
    if (!need(base + kInputNorm)) return;
    add_into(M * H, p(dx2), p(dx));
  }
  // dx holds d(embeddings): virtual tokens first, then the looked-up rows.
  PEFT_PROFILE_SCOPE(Embedding);
  embed_tokens_backward(parameter("model.embed_tokens.weight"), train_prompt_.get(), embedding_lora_, sel, *ids_, B, T, H,
                        p(dx));
}

}  // namespace peft::model
