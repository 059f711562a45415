#include "model/gpt2.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
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

const char* const kLinears[] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};

HostDims gpt2_dims(const Gpt2Config& c) {
  return HostDims{c.hidden, c.vocab, c.layers, c.hidden, true, "transformer.wte", "transformer.h."};
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

}  // namespace

int gpt2_param_depth(const std::string& name, int64_t layers) {
  const std::string prefix = "transformer.h.";
  if (starts_with(name, prefix)) {
    char* end = nullptr;
    const long layer = std::strtol(name.c_str() + prefix.size(), &end, 10);
    const std::string rest = end && *end == '.' ? std::string(end + 1) : std::string();
    const int base = layer_depth(layer);
    if (starts_with(rest, "ln_1")) return base + kInputNorm;
    if (starts_with(rest, "attn.c_attn")) return base + kQkv;
    if (starts_with(rest, "attn.c_proj") || starts_with(rest, "attn_adapter")) return base + kOutProj;
    if (starts_with(rest, "ln_2")) return base + kPostNorm;
    if (starts_with(rest, "mlp.c_fc")) return base + kGateUp;
    if (starts_with(rest, "mlp.c_proj") || starts_with(rest, "mlp_adapter")) return base + kDown;
    return base;
  }
  if (starts_with(name, "prefix_kv.")) return layer_depth(0) + kQkv;
  if (starts_with(name, "transformer.ln_f")) return final_norm_depth(layers);
  if (starts_with(name, "lm_head")) return head_depth(layers);
  return 0;
}

struct Gpt2Model::LayerCache {
  TensorPtr x, mean1, rstd1, n1, qkv, q, k, v, k_all, v_all, attn, lse, attn_out, x2, mean2, rstd2, n2, fc, act, mlp_out;
  nn::LinearCache c_attn, attn_proj, c_fc, mlp_proj;
  nn::BottleneckCache attn_adapters, mlp_adapters;
};

Gpt2Model::Gpt2Model(Gpt2Config config, TensorMap weights) : AdapterHost(gpt2_dims(config)), config_(std::move(config)) {
  const Gpt2Config& c = config_;
  PEFT_CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.hidden % c.heads == 0 && c.inner > 0 && c.vocab > 0 &&
                 c.positions > 0,
             ErrorCode::Config, "Expected positive sizes and a hidden size divisible by the heads in the GPT-2 config");
  auto expect = [&](const std::string& name, const Shape& shape, bool matrix) {
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
    auto param = std::make_shared<nn::Param>(name, it->second);
    param->trainable = t.dtype() == DType::F32;
    params_[name] = param;
  };
  const int64_t H = c.hidden;
  expect("transformer.wte.weight", {c.vocab, H}, true);
  expect("transformer.wpe.weight", {c.positions, H}, true);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = "transformer.h." + std::to_string(l) + ".";
    for (const char* ln : {"ln_1", "ln_2"}) {
      expect(pre + ln + ".weight", {H}, false);
      expect(pre + ln + ".bias", {H}, false);
    }
    const std::pair<const char*, Shape> shapes[] = {
        {"attn.c_attn", {3 * H, H}}, {"attn.c_proj", {H, H}}, {"mlp.c_fc", {c.inner, H}}, {"mlp.c_proj", {H, c.inner}}};
    for (const auto& [name, shape] : shapes) {
      expect(pre + name + ".weight", shape, true);
      expect(pre + name + ".bias", {shape[0]}, false);
      linears_[pre + name] = std::make_unique<nn::Linear>(pre + name, params_.at(pre + name + ".weight"),
                                                          params_.at(pre + name + ".bias"));
    }
  }
  expect("transformer.ln_f.weight", {H}, false);
  expect("transformer.ln_f.bias", {H}, false);
  linears_["lm_head"] = std::make_unique<nn::Linear>("lm_head", params_.at("transformer.wte.weight"), nullptr);
}

Gpt2Model::~Gpt2Model() = default;

std::vector<std::string> Gpt2Model::parameter_names() const {
  std::vector<std::string> names = {"transformer.wte.weight", "transformer.wpe.weight"};
  for (int64_t l = 0; l < config_.layers; ++l) {
    const std::string pre = "transformer.h." + std::to_string(l) + ".";
    for (const char* part : {"ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"}) {
      names.push_back(pre + part + ".weight");
      names.push_back(pre + part + ".bias");
    }
  }
  names.push_back("transformer.ln_f.weight");
  names.push_back("transformer.ln_f.bias");
  return names;
}

Tensor Gpt2Model::forward(const Tensor& ids, const Tensor* key_valid, bool train) {
  return run(ids, key_valid, train, false);
}

void Gpt2Model::reset_cache(int64_t max_len) {
  const Gpt2Config& c = config_;
  PEFT_CHECK(max_len >= 1, ErrorCode::Range, "Expected a cache length of at least 1 but received " + std::to_string(max_len));
  nn::ParamPtr prefix = active_prefix();
  const int64_t V = prefix ? prefix->value->dim(0) : 0, total = max_len + prompt_length() + V;
  k_cache_.clear();
  v_cache_.clear();
  for (int64_t l = 0; l < c.layers; ++l) {
    k_cache_.push_back(f32({total, c.hidden}));
    v_cache_.push_back(f32({total, c.hidden}));
    if (V) {  // the prefix's keys and values fill the first V positions
      join_prefix(*prefix, l, 0, c.layers, c.hidden, 1, 0, nullptr, p(k_cache_.back()));
      join_prefix(*prefix, l, 1, c.layers, c.hidden, 1, 0, nullptr, p(v_cache_.back()));
    }
  }
  cache_len_ = V;
  cache_prefix_ = V;
  cache_max_ = total;
}

Tensor Gpt2Model::step(const Tensor& ids) {
  PEFT_CHECK(cache_max_ > 0, ErrorCode::Argument, "step() needs reset_cache() first");
  PEFT_CHECK(ids.ndim() == 2 && ids.dim(0) == 1 && ids.dim(1) >= 1, ErrorCode::Shape,
             "Expected ids of shape [1, T] for a cached step but received " + shape_to_string(ids.shape()));
  const int64_t added = ids.dim(1) + (cache_len_ == cache_prefix_ ? prompt_length() : 0);
  PEFT_CHECK(cache_len_ + added <= cache_max_, ErrorCode::Range,
             "Expected at most " + std::to_string(cache_max_) + " positions in the KV cache but this step would make " +
                 std::to_string(cache_len_ + added));
  return run(ids, nullptr, false, true);
}

Tensor Gpt2Model::run(const Tensor& ids, const Tensor* key_valid, bool train, bool use_cache, bool with_logits) {
  const Gpt2Config& c = config_;
  PEFT_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I32, ErrorCode::Shape,
             "Expected i32 ids of shape [batch, seq] but received " + std::string(dtype_name(ids.dtype())) + " " +
                 shape_to_string(ids.shape()));
  if (key_valid)
    PEFT_CHECK(key_valid->dtype() == DType::U8 && key_valid->shape() == ids.shape(), ErrorCode::Shape,
               "Expected a u8 attention mask of shape " + shape_to_string(ids.shape()));
  if (!selection_.per_row.empty())
    PEFT_CHECK(static_cast<int64_t>(selection_.per_row.size()) == ids.dim(0), ErrorCode::Shape,
               "Expected one adapter name per batch row (" + std::to_string(ids.dim(0)) + ")");
  const nn::ParamPtr prompt = (use_cache && cache_len_ > cache_prefix_) ? nullptr : active_prompt();
  const int64_t P = prompt ? prompt->value->dim(0) : 0;
  const nn::ParamPtr prefix = use_cache ? nullptr : active_prefix();
  const int64_t V = prefix ? prefix->value->dim(0) : 0;
  const int64_t B = ids.dim(0), T = ids.dim(1) + P, M = B * T, H = c.hidden, D = H / c.heads, F = c.inner;
  nn::AdapterSelection sel = selection_;
  sel.rows_per_item = T;
  sel.train = train && sel.dropout;  // an evaluation-mode loss runs no dropout
  const int64_t start = use_cache ? cache_len_ : V;
  PEFT_CHECK(start + T <= c.positions, ErrorCode::Range,
             "Expected at most " + std::to_string(c.positions) + " positions (n_positions) but this needs " +
                 std::to_string(start + T));
  auto positions = std::make_shared<Tensor>(DType::I32, Shape{B, T});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) positions->data_as<int32_t>()[b * T + t] = static_cast<int32_t>(start + t);
  std::shared_ptr<Tensor> valid;
  if (key_valid) {
    const int64_t S = V + T;
    valid = std::make_shared<Tensor>(DType::U8, Shape{B, S});
    for (int64_t b = 0; b < B; ++b) {
      std::memset(valid->data_as<uint8_t>() + b * S, 1, static_cast<size_t>(V + P));
      std::memcpy(valid->data_as<uint8_t>() + b * S + V + P, key_valid->data_as<uint8_t>() + b * (T - P),
                  static_cast<size_t>(T - P));
    }
  }

  // x = wte[ids] (after any virtual tokens) + wpe[positions]
  TensorPtr x = f32({M, H});
  embed_tokens(weight("transformer.wte.weight"), prompt.get(), embedding_lora_, sel, ids, B, T, H, p(x));
  const Tensor& wpe = weight("transformer.wpe.weight");
  std::vector<float> row(static_cast<size_t>(H));
  for (int64_t i = 0; i < M; ++i) {
    const int64_t pos = positions->data_as<int32_t>()[i];
    kernels::convert(row.data(), DType::F32, static_cast<const char*>(wpe.data()) + pos * H * dtype_size(wpe.dtype()),
                     wpe.dtype(), H);
    add_into(H, row.data(), p(x) + i * H);
  }
  cache_.clear();
  const kernels::AttentionShape as{B, T, use_cache ? start + T : V + T, c.heads, c.heads, D};
  const kernels::AttentionMask mask{true, valid ? valid->data_as<uint8_t>() : nullptr};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = "transformer.h." + std::to_string(l) + ".";
    auto lin = [&](const char* name) -> const nn::Linear& { return *linears_.at(pre + name); };
    LayerCache lc;
    auto kept = [&](nn::LinearCache& cache) { return train ? &cache : nullptr; };
    lc.x = x;
    lc.mean1 = f32({M});
    lc.rstd1 = f32({M});
    lc.n1 = f32({M, H});
    kernels::layernorm_forward(M, H, p(x), weight_f32(pre + "ln_1.weight"), weight_f32(pre + "ln_1.bias"), c.ln_eps,
                               p(lc.n1), p(lc.mean1), p(lc.rstd1));
    lc.qkv = f32({M, 3 * H});
    lin("attn.c_attn").forward(sel, M, p(lc.n1), p(lc.qkv), kept(lc.c_attn));
    lc.q = f32({M, H});
    lc.k = f32({M, H});
    lc.v = f32({M, H});
    for (int64_t i = 0; i < M; ++i) {
      std::memcpy(p(lc.q) + i * H, p(lc.qkv) + i * 3 * H, sizeof(float) * H);
      std::memcpy(p(lc.k) + i * H, p(lc.qkv) + i * 3 * H + H, sizeof(float) * H);
      std::memcpy(p(lc.v) + i * H, p(lc.qkv) + i * 3 * H + 2 * H, sizeof(float) * H);
    }
    if (!train) lc.qkv.reset();
    const float* keys = p(lc.k);
    const float* values = p(lc.v);
    if (V) {
      lc.k_all = f32({B, V + T, H});
      lc.v_all = f32({B, V + T, H});
      join_prefix(*prefix, l, 0, c.layers, H, B, T, p(lc.k), p(lc.k_all));
      join_prefix(*prefix, l, 1, c.layers, H, B, T, p(lc.v), p(lc.v_all));
      keys = p(lc.k_all);
      values = p(lc.v_all);
    }
    if (use_cache) {
      float* kc = p(k_cache_[static_cast<size_t>(l)]);
      float* vc = p(v_cache_[static_cast<size_t>(l)]);
      std::memcpy(kc + start * H, p(lc.k), sizeof(float) * T * H);
      std::memcpy(vc + start * H, p(lc.v), sizeof(float) * T * H);
      keys = kc;
      values = vc;
    }
    lc.attn = f32({M, H});
    lc.lse = f32({B, c.heads, T});
    kernels::attention_forward(as, mask, scale, p(lc.q), keys, values, p(lc.attn), p(lc.lse));
    lc.x2 = f32({M, H});
    lin("attn.c_proj").forward(sel, M, p(lc.attn), p(lc.x2), kept(lc.attn_proj));
    const nn::BottleneckSite& attn_site = *attn_sites_[static_cast<size_t>(l)];
    if (!attn_site.empty()) {
      lc.attn_out = f32({M, H});
      std::memcpy(p(lc.attn_out), p(lc.x2), sizeof(float) * M * H);
      attn_site.forward(sel, false, M, p(lc.attn_out), p(lc.x2), train ? &lc.attn_adapters : nullptr);
      attn_site.forward(sel, true, M, p(lc.n1), p(lc.x2), train ? &lc.attn_adapters : nullptr);
    }
    add_into(M * H, p(x), p(lc.x2));
    lc.mean2 = f32({M});
    lc.rstd2 = f32({M});
    lc.n2 = f32({M, H});
    kernels::layernorm_forward(M, H, p(lc.x2), weight_f32(pre + "ln_2.weight"), weight_f32(pre + "ln_2.bias"), c.ln_eps,
                               p(lc.n2), p(lc.mean2), p(lc.rstd2));
    lc.fc = f32({M, F});
    lc.act = f32({M, F});
    lin("mlp.c_fc").forward(sel, M, p(lc.n2), p(lc.fc), kept(lc.c_fc));
    kernels::gelu_tanh_forward(M * F, p(lc.fc), p(lc.act));
    TensorPtr next = f32({M, H});
    lin("mlp.c_proj").forward(sel, M, p(lc.act), p(next), kept(lc.mlp_proj));
    const nn::BottleneckSite& mlp_site = *mlp_sites_[static_cast<size_t>(l)];
    if (!mlp_site.empty()) {
      lc.mlp_out = f32({M, H});
      std::memcpy(p(lc.mlp_out), p(next), sizeof(float) * M * H);
      mlp_site.forward(sel, false, M, p(lc.mlp_out), p(next), train ? &lc.mlp_adapters : nullptr);
      mlp_site.forward(sel, true, M, p(lc.n2), p(next), train ? &lc.mlp_adapters : nullptr);
    }
    add_into(M * H, p(lc.x2), p(next));
    if (train) cache_.push_back(std::move(lc));
    x = next;
  }
  TensorPtr mean = f32({M}), rstd = f32({M}), normed = f32({M, H});
  kernels::layernorm_forward(M, H, p(x), weight_f32("transformer.ln_f.weight"), weight_f32("transformer.ln_f.bias"),
                             c.ln_eps, p(normed), p(mean), p(rstd));
  const nn::Linear& head = *linears_.at("lm_head");
  if (use_cache) {
    cache_len_ += T;
    Tensor last = Tensor::uninitialized(DType::F32, {1, c.vocab});
    nn::AdapterSelection one = sel;
    one.rows_per_item = 1;
    head.forward(one, 1, p(normed) + (M - 1) * H, last.data_as<float>(), nullptr);
    return last;
  }
  Tensor logits = with_logits ? Tensor::uninitialized(DType::F32, {B, T, c.vocab}) : Tensor::uninitialized(DType::F32, {0});
  if (with_logits) head.forward(sel, M, p(normed), logits.data_as<float>(), train ? &head_cache_ : nullptr);
  if (train) {
    train_selection_ = sel;
    ids_ = std::make_shared<Tensor>(ids);
    key_valid_ = valid;
    positions_ = positions;
    final_input_ = x;
    final_mean_ = mean;
    final_rstd_ = rstd;
    final_normed_ = normed;
    batch_ = B;
    seq_ = T;
    train_prompt_ = prompt;
    train_prefix_ = prefix;
  }
  return logits;
}

int Gpt2Model::begin_backward(bool accumulate) {
  if (!accumulate)
    for (auto& [name, param] : params_) param->zero_grad();
  // The lowest point of the network that trains: gradients stop flowing below it.
  int lowest = kNoTrainable;
  for (auto& [name, param] : params_)
    if (param->trainable) lowest = std::min(lowest, gpt2_param_depth(name, config_.layers));
  return lowest;
}

void Gpt2Model::check_labels(const Tensor& labels) const {
  PEFT_CHECK(final_input_ != nullptr, ErrorCode::Argument, "loss_backward needs a forward with train = true first");
  PEFT_CHECK(labels.dtype() == DType::I32 && labels.shape() == Shape({batch_, seq_}), ErrorCode::Shape,
             "Expected i32 labels of shape " + shape_to_string({batch_, seq_}) + " but received " +
                 dtype_name(labels.dtype()) + " " + shape_to_string(labels.shape()));
}

double Gpt2Model::loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) {
  const Gpt2Config& c = config_;
  check_labels(labels);
  const int64_t M = batch_ * seq_, H = c.hidden;
  PEFT_CHECK(logits.shape() == Shape({batch_, seq_, c.vocab}), ErrorCode::Shape, "logits do not match the last forward");
  const int lowest = begin_backward(accumulate);
  const std::vector<int32_t> targets = next_token_targets(labels, batch_, seq_);
  TensorPtr dlogits = f32({M, c.vocab});
  std::vector<float> row_loss(static_cast<size_t>(M));
  const kernels::CrossEntropyResult ce = kernels::cross_entropy(M, c.vocab, logits.data_as<float>(), targets.data(),
                                                                -100, 0.0, row_loss.data(), p(dlogits));
  const double loss = ce.count ? ce.loss_sum / static_cast<double>(ce.count) : 0.0;
  if (lowest == kNoTrainable) return loss;
  TensorPtr d_normed = lowest < head_depth(c.layers) ? f32({M, H}) : nullptr;
  linears_.at("lm_head")->backward(train_selection_, M, p(dlogits), p(final_normed_), head_cache_,
                                   d_normed ? p(d_normed) : nullptr, false);
  dlogits.reset();
  backward_trunk(d_normed, lowest);
  return loss;
}

double Gpt2Model::train_loss(const Tensor& ids, const Tensor* key_valid, const Tensor& labels, bool accumulate) {
  const Gpt2Config& c = config_;
  const nn::Linear& head = *linears_.at("lm_head");
  // Adapters on the head keep per-row state (dropout masks by row, DoRA norms): the whole-batch path.
  if (!head.lora().empty() || !head.ia3().empty()) return AdapterHost::train_loss(ids, key_valid, labels, accumulate);
  run(ids, key_valid, true, false, false);
  check_labels(labels);
  const int64_t M = batch_ * seq_, H = c.hidden;
  const int lowest = begin_backward(accumulate);
  const std::vector<int32_t> targets = next_token_targets(labels, batch_, seq_);
  TensorPtr d_normed = lowest < head_depth(c.layers) ? f32({M, H}) : nullptr;
  const bool backward = lowest != kNoTrainable;
  const double loss = blocked_head_loss(head, train_selection_, M, H, c.vocab, p(final_normed_), targets, backward,
                                        d_normed ? p(d_normed) : nullptr);
  if (backward) backward_trunk(d_normed, lowest);
  return loss;
}

void Gpt2Model::backward_trunk(const std::shared_ptr<Tensor>& d_normed, int lowest) {
  const Gpt2Config& c = config_;
  const int64_t B = batch_, T = seq_, M = B * T, H = c.hidden, D = H / c.heads, F = c.inner;
  const nn::AdapterSelection& sel = train_selection_;
  auto need = [&](int depth) { return lowest < depth; };   // does anything below this point train?
  auto reach = [&](int depth) { return lowest <= depth; };  // does this point or anything below train?
  if (!reach(final_norm_depth(c.layers))) return;
  TensorPtr dx = f32({M, H});
  nn::Param& lnf_w = parameter("transformer.ln_f.weight");
  nn::Param& lnf_b = parameter("transformer.ln_f.bias");
  kernels::layernorm_backward(M, H, p(d_normed), p(final_input_), lnf_w.data(), p(final_mean_), p(final_rstd_),
                              need(final_norm_depth(c.layers)) ? p(dx) : nullptr, lnf_w.grad_data(), lnf_b.grad_data(),
                              true);
  if (!need(final_norm_depth(c.layers))) return;

  const int64_t V = train_prefix_ ? train_prefix_->value->dim(0) : 0, S = V + T;
  const kernels::AttentionShape as{B, T, S, c.heads, c.heads, D};
  const kernels::AttentionMask mask{true, key_valid_ ? key_valid_->data_as<uint8_t>() : nullptr};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  TensorPtr d_act = f32({M, F}), d_fc = f32({M, F}), d_n = f32({M, H}), d_attn = f32({M, H}), dx2 = f32({M, H});
  TensorPtr dq = f32({M, H}), dk = f32({M, H}), dv = f32({M, H}), dqkv = f32({M, 3 * H});
  TensorPtr dk_all = V ? f32({B * S, H}) : nullptr, dv_all = V ? f32({B * S, H}) : nullptr;
  for (int64_t l = c.layers - 1; l >= 0; --l) {
    const LayerCache& lc = cache_[static_cast<size_t>(l)];
    const std::string pre = "transformer.h." + std::to_string(l) + ".";
    auto lin = [&](const char* name) -> const nn::Linear& { return *linears_.at(pre + name); };
    const int base = layer_depth(l);
    // MLP: x3 = x2 + c_proj(gelu(c_fc(n2))) (+ adapters), n2 = ln_2(x2). dx holds d x3.
    std::memcpy(p(dx2), p(dx), sizeof(float) * M * H);
    const nn::BottleneckSite& mlp_site = *mlp_sites_[static_cast<size_t>(l)];
    std::vector<float> d_n_parallel, d_mlp_out;
    const float* d_mlp = p(dx);
    if (!mlp_site.empty()) {
      d_mlp_out.assign(p(dx), p(dx) + M * H);
      mlp_site.backward(sel, false, M, p(dx), p(lc.mlp_out), lc.mlp_adapters, d_mlp_out.data());
      d_n_parallel.assign(static_cast<size_t>(M * H), 0.0f);
      mlp_site.backward(sel, true, M, p(dx), p(lc.n2), lc.mlp_adapters, d_n_parallel.data());
      d_mlp = d_mlp_out.data();
    }
    lin("mlp.c_proj").backward(sel, M, d_mlp, p(lc.act), lc.mlp_proj, need(base + kDown) ? p(d_act) : nullptr, false);
    if (need(base + kDown)) {
      kernels::gelu_tanh_backward(M * F, p(d_act), p(lc.fc), p(d_fc));
      const bool want_dn = need(base + kGateUp);
      lin("mlp.c_fc").backward(sel, M, p(d_fc), p(lc.n2), lc.c_fc, want_dn ? p(d_n) : nullptr, false);
      if (want_dn) {
        if (!d_n_parallel.empty()) add_into(M * H, d_n_parallel.data(), p(d_n));
        nn::Param& w = parameter(pre + "ln_2.weight");
        nn::Param& b = parameter(pre + "ln_2.bias");
        std::vector<float> d_x2(static_cast<size_t>(M * H));
        kernels::layernorm_backward(M, H, p(d_n), p(lc.x2), w.data(), p(lc.mean2), p(lc.rstd2),
                                    need(base + kPostNorm) ? d_x2.data() : nullptr, w.grad_data(), b.grad_data(), true);
        if (need(base + kPostNorm)) add_into(M * H, d_x2.data(), p(dx2));
      }
    }
    if (!reach(base + kOutProj)) return;
    // Attention: x2 = x + c_proj(attn(q, k, v)) (+ adapters), [q k v] = c_attn(n1), n1 = ln_1(x).
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
    lin("attn.c_proj").backward(sel, M, d_o, p(lc.attn), lc.attn_proj, need(base + kOutProj) ? p(d_attn) : nullptr, false);
    if (!need(base + kOutProj)) return;
    if (V) {
      kernels::attention_backward(as, mask, scale, p(lc.q), p(lc.k_all), p(lc.v_all), p(lc.attn), p(d_attn), p(lc.lse),
                                  p(dq), p(dk_all), p(dv_all));
      split_prefix_grad(*train_prefix_, l, 0, c.layers, H, B, T, p(dk_all), p(dk));
      split_prefix_grad(*train_prefix_, l, 1, c.layers, H, B, T, p(dv_all), p(dv));
    } else {
      kernels::attention_backward(as, mask, scale, p(lc.q), p(lc.k), p(lc.v), p(lc.attn), p(d_attn), p(lc.lse), p(dq),
                                  p(dk), p(dv));
    }
    for (int64_t i = 0; i < M; ++i) {
      std::memcpy(p(dqkv) + i * 3 * H, p(dq) + i * H, sizeof(float) * H);
      std::memcpy(p(dqkv) + i * 3 * H + H, p(dk) + i * H, sizeof(float) * H);
      std::memcpy(p(dqkv) + i * 3 * H + 2 * H, p(dv) + i * H, sizeof(float) * H);
    }
    const bool want_dn = need(base + kQkv);
    lin("attn.c_attn").backward(sel, M, p(dqkv), p(lc.n1), lc.c_attn, want_dn ? p(d_n) : nullptr, false);
    if (!want_dn) return;
    if (!d_n1_parallel.empty()) add_into(M * H, d_n1_parallel.data(), p(d_n));
    nn::Param& w = parameter(pre + "ln_1.weight");
    nn::Param& b = parameter(pre + "ln_1.bias");
    kernels::layernorm_backward(M, H, p(d_n), p(lc.x), w.data(), p(lc.mean1), p(lc.rstd1),
                                need(base + kInputNorm) ? p(dx) : nullptr, w.grad_data(), b.grad_data(), true);
    if (!need(base + kInputNorm)) return;
    add_into(M * H, p(dx2), p(dx));
  }
  // dx holds d(token embedding + position embedding).
  nn::Param& wpe = parameter("transformer.wpe.weight");
  if (float* g = wpe.grad_data())
    for (int64_t i = 0; i < M; ++i) add_into(H, p(dx) + i * H, g + positions_->data_as<int32_t>()[i] * H);
  embed_tokens_backward(parameter("transformer.wte.weight"), train_prompt_.get(), embedding_lora_, sel, *ids_, B, T, H,
                        p(dx));
}

}  // namespace peft::model
