#include "model/llama.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/rope.h"

namespace peft::model {

namespace {

using TensorPtr = std::shared_ptr<Tensor>;

TensorPtr f32(const Shape& shape) { return std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, shape)); }
TensorPtr zeros(const Shape& shape) { return std::make_shared<Tensor>(DType::F32, shape); }
float* p(const TensorPtr& t) { return t->data_as<float>(); }

kernels::MatrixRef ref(const Tensor& t, bool trans) { return {t.data(), t.dtype(), t.dim(-1), trans}; }
kernels::MatrixRef ref(const float* data, int64_t cols, bool trans) { return {data, DType::F32, cols, trans}; }

// y[m, n] = x[m, k] · W[n, k]ᵀ (+ b[n])
void linear(int64_t m, const float* x, const Tensor& w, const Tensor* b, float* y) {
  const int64_t n = w.dim(0), k = w.dim(1);
  kernels::gemm(m, n, k, ref(x, k, false), ref(w, true), y, n, 1.0f, false);
  if (b) {
    const float* bias = b->data_as<float>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[j];
  }
}

// Gradients of y = x·Wᵀ + b for dy[m, n]: dW[n, k] = dyᵀ·x; db[n] = Σ rows of dy; dx[m, k] (+)= dy·W.
void linear_backward(int64_t m, const float* dy, const float* x, const Tensor& w, float* dx, bool accumulate_dx,
                     float* dw, float* db) {
  const int64_t n = w.dim(0), k = w.dim(1);
  kernels::gemm(n, k, m, ref(dy, n, true), ref(x, k, false), dw, k, 1.0f, false);
  if (db) {
    std::memset(db, 0, sizeof(float) * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) db[j] += dy[i * n + j];
  }
  if (dx) kernels::gemm(m, k, n, ref(dy, n, false), ref(w, false), dx, k, 1.0f, accumulate_dx);
}

}  // namespace

struct LlamaModel::LayerCache {
  TensorPtr x, rstd1, n1, q, k, v, attn, lse, x2, rstd2, n2, gate, up, act;
};

LlamaModel::LlamaModel(LlamaConfig config, TensorMap weights) : config_(std::move(config)), weights_(std::move(weights)) {
  const LlamaConfig& c = config_;
  PEFT_CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.kv_heads > 0 && c.heads % c.kv_heads == 0 &&
                 c.head_dim > 0 && c.head_dim % 2 == 0 && c.vocab > 0 && c.intermediate > 0,
             ErrorCode::Config, "Expected positive sizes, heads a multiple of kv heads and an even head_dim in the model config");
  PEFT_CHECK(c.rope_freq_scale.empty() || static_cast<int64_t>(c.rope_freq_scale.size()) == c.head_dim / 2,
             ErrorCode::Config, "Expected head_dim / 2 RoPE frequency factors");
  for (const std::string& name : parameter_names()) {
    auto it = weights_.find(name);
    PEFT_CHECK(it != weights_.end(), ErrorCode::Config, "The weights have no tensor " + name + ", which the config needs");
  }
  auto expect = [&](const std::string& name, const Shape& shape, bool linear_weight) {
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
  expect("model.embed_tokens.weight", {c.vocab, c.hidden}, false);
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
  }
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

const Tensor& LlamaModel::weight(const std::string& name) const {
  auto it = weights_.find(name);
  PEFT_CHECK(it != weights_.end(), ErrorCode::Internal, "missing weight " + name);
  return *it->second;
}

Tensor LlamaModel::forward(const Tensor& ids, const Tensor* key_valid, bool train) {
  return run(ids, key_valid, train, false);
}

void LlamaModel::reset_cache(int64_t max_len) {
  const LlamaConfig& c = config_;
  PEFT_CHECK(max_len >= 1, ErrorCode::Range, "Expected a cache length of at least 1 but received " + std::to_string(max_len));
  k_cache_.clear();
  v_cache_.clear();
  for (int64_t l = 0; l < c.layers; ++l) {
    k_cache_.push_back(f32({max_len, c.kv_heads, c.head_dim}));
    v_cache_.push_back(f32({max_len, c.kv_heads, c.head_dim}));
  }
  cache_len_ = 0;
  cache_max_ = max_len;
}

Tensor LlamaModel::step(const Tensor& ids) {
  PEFT_CHECK(cache_max_ > 0, ErrorCode::Argument, "step() needs reset_cache() first");
  PEFT_CHECK(ids.ndim() == 2 && ids.dim(0) == 1 && ids.dim(1) >= 1, ErrorCode::Shape,
             "Expected ids of shape [1, T] for a cached step but received " + shape_to_string(ids.shape()));
  PEFT_CHECK(cache_len_ + ids.dim(1) <= cache_max_, ErrorCode::Range,
             "Expected at most " + std::to_string(cache_max_) + " positions in the KV cache but this step would make " +
                 std::to_string(cache_len_ + ids.dim(1)));
  return run(ids, nullptr, false, true);
}

Tensor LlamaModel::run(const Tensor& ids, const Tensor* key_valid, bool train, bool use_cache) {
  const LlamaConfig& c = config_;
  PEFT_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I32, ErrorCode::Shape,
             "Expected i32 ids of shape [batch, seq] but received " + std::string(dtype_name(ids.dtype())) + " " +
                 shape_to_string(ids.shape()));
  const int64_t B = ids.dim(0), T = ids.dim(1), M = B * T, H = c.hidden, D = c.head_dim;
  const int64_t q_dim = c.heads * D, kv_dim = c.kv_heads * D, F = c.intermediate;
  if (key_valid) {
    PEFT_CHECK(key_valid->dtype() == DType::U8 && key_valid->shape() == ids.shape(), ErrorCode::Shape,
               "Expected a u8 attention mask of shape " + shape_to_string(ids.shape()) + " but received " +
                   dtype_name(key_valid->dtype()) + " " + shape_to_string(key_valid->shape()));
  }
  auto positions = std::make_shared<Tensor>(DType::I32, Shape{B, T});
  const int64_t start = use_cache ? cache_len_ : 0;  // position of the first new token
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) positions->data_as<int32_t>()[b * T + t] = static_cast<int32_t>(start + t);

  TensorPtr x = f32({M, H});
  kernels::embedding_forward(M, c.vocab, H, ids.data_as<int32_t>(), weight("model.embed_tokens.weight").data_as<float>(),
                             p(x));
  cache_.clear();
  // With the cache (batch 1) the queries attend to every cached key plus the new ones.
  const kernels::AttentionShape as{B, T, start + T, c.heads, c.kv_heads, D};
  const kernels::AttentionMask mask{true, key_valid ? key_valid->data_as<uint8_t>() : nullptr};
  const kernels::RopeShape q_shape{B, T, c.heads, D}, k_shape{B, T, c.kv_heads, D};
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    auto bias = [&](const char* proj) -> const Tensor* {
      return c.attention_bias ? &weight(pre + "self_attn." + proj + ".bias") : nullptr;
    };
    LayerCache lc;
    lc.x = x;
    lc.rstd1 = f32({M});
    lc.n1 = f32({M, H});
    kernels::rmsnorm_forward(M, H, p(x), weight(pre + "input_layernorm.weight").data_as<float>(), c.rms_eps, p(lc.n1),
                             p(lc.rstd1));
    lc.q = f32({M, q_dim});
    lc.k = f32({M, kv_dim});
    lc.v = f32({M, kv_dim});
    linear(M, p(lc.n1), weight(pre + "self_attn.q_proj.weight"), bias("q_proj"), p(lc.q));
    linear(M, p(lc.n1), weight(pre + "self_attn.k_proj.weight"), bias("k_proj"), p(lc.k));
    linear(M, p(lc.n1), weight(pre + "self_attn.v_proj.weight"), bias("v_proj"), p(lc.v));
    kernels::rope_apply(q_shape, p(lc.q), positions->data_as<int32_t>(), inv_freq_.data(), false, p(lc.q));
    kernels::rope_apply(k_shape, p(lc.k), positions->data_as<int32_t>(), inv_freq_.data(), false, p(lc.k));
    lc.attn = f32({M, q_dim});
    lc.lse = f32({B, c.heads, T});
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    const float* keys = p(lc.k);
    const float* values = p(lc.v);
    if (use_cache) {
      float* kc = p(k_cache_[static_cast<size_t>(l)]);
      float* vc = p(v_cache_[static_cast<size_t>(l)]);
      std::memcpy(kc + start * kv_dim, p(lc.k), sizeof(float) * T * kv_dim);
      std::memcpy(vc + start * kv_dim, p(lc.v), sizeof(float) * T * kv_dim);
      keys = kc;
      values = vc;
    }
    kernels::attention_forward(as, mask, scale, p(lc.q), keys, values, p(lc.attn), p(lc.lse));
    lc.x2 = f32({M, H});
    linear(M, p(lc.attn), weight(pre + "self_attn.o_proj.weight"), nullptr, p(lc.x2));
    for (int64_t i = 0; i < M * H; ++i) p(lc.x2)[i] += p(x)[i];
    lc.rstd2 = f32({M});
    lc.n2 = f32({M, H});
    kernels::rmsnorm_forward(M, H, p(lc.x2), weight(pre + "post_attention_layernorm.weight").data_as<float>(),
                             c.rms_eps, p(lc.n2), p(lc.rstd2));
    lc.gate = f32({M, F});
    lc.up = f32({M, F});
    lc.act = f32({M, F});
    linear(M, p(lc.n2), weight(pre + "mlp.gate_proj.weight"), nullptr, p(lc.gate));
    linear(M, p(lc.n2), weight(pre + "mlp.up_proj.weight"), nullptr, p(lc.up));
    kernels::swiglu_forward(M * F, p(lc.gate), p(lc.up), p(lc.act));
    TensorPtr next = f32({M, H});
    linear(M, p(lc.act), weight(pre + "mlp.down_proj.weight"), nullptr, p(next));
    for (int64_t i = 0; i < M * H; ++i) p(next)[i] += p(lc.x2)[i];
    if (train) cache_.push_back(std::move(lc));
    x = next;
  }
  TensorPtr rstd = f32({M}), normed = f32({M, H});
  kernels::rmsnorm_forward(M, H, p(x), weight("model.norm.weight").data_as<float>(), c.rms_eps, p(normed), p(rstd));
  const std::string head = c.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  if (use_cache) {  // only the last position's logits: the next token's distribution
    cache_len_ += T;
    Tensor last = Tensor::uninitialized(DType::F32, {1, c.vocab});
    linear(1, p(normed) + (M - 1) * H, weight(head), nullptr, last.data_as<float>());
    return last;
  }
  Tensor logits = Tensor::uninitialized(DType::F32, {B, T, c.vocab});
  linear(M, p(normed), weight(head), nullptr, logits.data_as<float>());
  if (train) {
    ids_ = std::make_shared<Tensor>(ids);
    key_valid_ = key_valid ? std::make_shared<Tensor>(*key_valid) : nullptr;
    positions_ = positions;
    final_input_ = x;
    final_rstd_ = rstd;
    final_normed_ = normed;
    batch_ = B;
    seq_ = T;
  }
  return logits;
}

double LlamaModel::loss_backward(const Tensor& logits, const Tensor& labels, TensorMap& grads) {
  const LlamaConfig& c = config_;
  PEFT_CHECK(final_input_ != nullptr, ErrorCode::Argument, "loss_backward needs a forward with train = true first");
  const int64_t B = batch_, T = seq_, M = B * T, H = c.hidden, D = c.head_dim, F = c.intermediate;
  const int64_t q_dim = c.heads * D, kv_dim = c.kv_heads * D;
  PEFT_CHECK(labels.dtype() == DType::I32 && labels.shape() == Shape({B, T}), ErrorCode::Shape,
             "Expected i32 labels of shape " + shape_to_string({B, T}) + " but received " +
                 dtype_name(labels.dtype()) + " " + shape_to_string(labels.shape()));
  PEFT_CHECK(logits.shape() == Shape({B, T, c.vocab}), ErrorCode::Shape, "logits do not match the last forward");
  grads.clear();
  for (const std::string& name : parameter_names()) grads[name] = zeros(weight(name).shape());

  // Next-token targets: position t predicts labels[t + 1]; the last position predicts nothing.
  std::vector<int32_t> targets(static_cast<size_t>(M), -100);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) targets[b * T + t] = labels.data_as<int32_t>()[b * T + t + 1];
  TensorPtr dlogits = f32({M, c.vocab});
  std::memcpy(p(dlogits), logits.data(), logits.nbytes());
  std::vector<float> row_loss(static_cast<size_t>(M));
  const kernels::CrossEntropyResult ce =
      kernels::cross_entropy(M, c.vocab, p(dlogits), targets.data(), -100, 0.0, row_loss.data(), p(dlogits));
  const double loss = ce.count ? ce.loss_sum / static_cast<double>(ce.count) : 0.0;

  // Output head and final norm.
  const std::string head = c.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  TensorPtr d_normed = f32({M, H});
  std::vector<float> d_head(static_cast<size_t>(c.vocab * H));
  linear_backward(M, p(dlogits), p(final_normed_), weight(head), p(d_normed), false, d_head.data(), nullptr);
  for (size_t i = 0; i < d_head.size(); ++i) p(grads[head])[i] += d_head[i];
  TensorPtr dx = f32({M, H});
  kernels::rmsnorm_backward(M, H, p(d_normed), p(final_input_), weight("model.norm.weight").data_as<float>(),
                            p(final_rstd_), p(dx), p(grads["model.norm.weight"]), true);

  const kernels::AttentionShape as{B, T, T, c.heads, c.kv_heads, D};
  const kernels::AttentionMask mask{true, key_valid_ ? key_valid_->data_as<uint8_t>() : nullptr};
  const kernels::RopeShape q_shape{B, T, c.heads, D}, k_shape{B, T, c.kv_heads, D};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  TensorPtr d_act = f32({M, F}), d_gate = f32({M, F}), d_up = f32({M, F}), d_n = f32({M, H}), d_attn = f32({M, q_dim});
  TensorPtr dq = f32({M, q_dim}), dk = f32({M, kv_dim}), dv = f32({M, kv_dim});
  for (int64_t l = c.layers - 1; l >= 0; --l) {
    const LayerCache& lc = cache_[static_cast<size_t>(l)];
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    auto g = [&](const std::string& name) { return p(grads[pre + name]); };
    // MLP: x3 = x2 + down(swiglu(gate(n2), up(n2))), n2 = norm(x2). dx holds d x3.
    linear_backward(M, p(dx), p(lc.act), weight(pre + "mlp.down_proj.weight"), p(d_act), false, g("mlp.down_proj.weight"),
                    nullptr);
    kernels::swiglu_backward(M * F, p(d_act), p(lc.gate), p(lc.up), p(d_gate), p(d_up));
    linear_backward(M, p(d_gate), p(lc.n2), weight(pre + "mlp.gate_proj.weight"), p(d_n), false,
                    g("mlp.gate_proj.weight"), nullptr);
    linear_backward(M, p(d_up), p(lc.n2), weight(pre + "mlp.up_proj.weight"), p(d_n), true, g("mlp.up_proj.weight"),
                    nullptr);
    TensorPtr dx2 = f32({M, H});
    kernels::rmsnorm_backward(M, H, p(d_n), p(lc.x2), weight(pre + "post_attention_layernorm.weight").data_as<float>(),
                              p(lc.rstd2), p(dx2), g("post_attention_layernorm.weight"), true);
    for (int64_t i = 0; i < M * H; ++i) p(dx2)[i] += p(dx)[i];
    // Attention: x2 = x + o_proj(attn(rope(q), rope(k), v)), q/k/v from n1 = norm(x).
    linear_backward(M, p(dx2), p(lc.attn), weight(pre + "self_attn.o_proj.weight"), p(d_attn), false,
                    g("self_attn.o_proj.weight"), nullptr);
    kernels::attention_backward(as, mask, scale, p(lc.q), p(lc.k), p(lc.v), p(lc.attn), p(d_attn), p(lc.lse), p(dq),
                                p(dk), p(dv));
    kernels::rope_apply(q_shape, p(dq), positions_->data_as<int32_t>(), inv_freq_.data(), true, p(dq));
    kernels::rope_apply(k_shape, p(dk), positions_->data_as<int32_t>(), inv_freq_.data(), true, p(dk));
    auto bias_grad = [&](const char* proj) { return c.attention_bias ? g(std::string("self_attn.") + proj + ".bias") : nullptr; };
    linear_backward(M, p(dq), p(lc.n1), weight(pre + "self_attn.q_proj.weight"), p(d_n), false,
                    g("self_attn.q_proj.weight"), bias_grad("q_proj"));
    linear_backward(M, p(dk), p(lc.n1), weight(pre + "self_attn.k_proj.weight"), p(d_n), true,
                    g("self_attn.k_proj.weight"), bias_grad("k_proj"));
    linear_backward(M, p(dv), p(lc.n1), weight(pre + "self_attn.v_proj.weight"), p(d_n), true,
                    g("self_attn.v_proj.weight"), bias_grad("v_proj"));
    kernels::rmsnorm_backward(M, H, p(d_n), p(lc.x), weight(pre + "input_layernorm.weight").data_as<float>(),
                              p(lc.rstd1), p(dx), g("input_layernorm.weight"), true);
    for (int64_t i = 0; i < M * H; ++i) p(dx)[i] += p(dx2)[i];
  }
  kernels::embedding_backward(M, c.vocab, H, p(dx), ids_->data_as<int32_t>(), p(grads["model.embed_tokens.weight"]), true);
  return loss;
}

}  // namespace peft::model
