#include "model/bert.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/convert.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "model/decoder_parts.h"

namespace peft::model {

namespace {

using TensorPtr = std::shared_ptr<Tensor>;

TensorPtr f32(const Shape& shape) { return std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, shape)); }
float* p(const TensorPtr& t) { return t->data_as<float>(); }
void add_into(int64_t n, const float* src, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

// GELU with the exact error function (BERT's "gelu"): y = x·Φ(x).
void gelu_erf(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678f));
}
// dx = dy · (Φ(x) + x·φ(x)); dx may alias dy.
void gelu_erf_backward(int64_t n, const float* dy, const float* x, float* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const float cdf = 0.5f * (1.0f + std::erf(x[i] * 0.70710678f));
    const float pdf = 0.39894228f * std::exp(-0.5f * x[i] * x[i]);
    dx[i] = dy[i] * (cdf + x[i] * pdf);
  }
}

HostDims bert_dims(const BertConfig& c) {
  return HostDims{c.hidden, c.vocab, c.layers, c.hidden, false, "bert.embeddings.word_embeddings", "bert.encoder.layer."};
}

// LayerNorm with its saved statistics.
struct Norm {
  TensorPtr mean, rstd;
};

}  // namespace

struct BertClassifier::LayerCache {
  TensorPtr x, q, k, v, attn, lse, pre1, h1, inter, act, pre2, attn_out, ffn_out;
  Norm n1, n2;
  nn::LinearCache query, key, value, attn_dense, inter_dense, out_dense;
  nn::BottleneckCache attn_adapters, mlp_adapters;
};

BertClassifier::BertClassifier(BertConfig config, TensorMap weights)
    : AdapterHost(bert_dims(config)), config_(std::move(config)) {
  const BertConfig& c = config_;
  PEFT_CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.hidden % c.heads == 0 && c.intermediate > 0 && c.vocab > 0 &&
                 c.positions > 0 && c.type_vocab > 0 && c.num_labels > 0,
             ErrorCode::Config, "Expected positive sizes and a hidden size divisible by the heads in the BERT config");
  const int64_t H = c.hidden;
  auto expect = [&](const std::string& name, const Shape& shape) {
    auto it = weights.find(name);
    PEFT_CHECK(it != weights.end(), ErrorCode::Config, "The weights have no tensor " + name + ", which the config needs");
    PEFT_CHECK(it->second->shape() == shape, ErrorCode::Config,
               "Expected shape " + shape_to_string(shape) + " for " + name + " (from the config) but the weights have " +
                   shape_to_string(it->second->shape()));
    PEFT_CHECK(it->second->dtype() == DType::F32 || (shape.size() == 2 && it->second->dtype() == DType::BF16),
               ErrorCode::DType, "Expected f32 (or bf16 for matrices) for " + name);
    auto param = std::make_shared<nn::Param>(name, it->second);
    param->trainable = it->second->dtype() == DType::F32;
    params_[name] = param;
  };
  auto dense = [&](const std::string& module, int64_t out, int64_t in) {
    expect(module + ".weight", {out, in});
    expect(module + ".bias", {out});
    linears_[module] = std::make_unique<nn::Linear>(module, params_.at(module + ".weight"), params_.at(module + ".bias"));
  };
  auto norm = [&](const std::string& module) {
    expect(module + ".weight", {H});
    expect(module + ".bias", {H});
  };
  expect("bert.embeddings.word_embeddings.weight", {c.vocab, H});
  expect("bert.embeddings.position_embeddings.weight", {c.positions, H});
  expect("bert.embeddings.token_type_embeddings.weight", {c.type_vocab, H});
  norm("bert.embeddings.LayerNorm");
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = "bert.encoder.layer." + std::to_string(l) + ".";
    for (const char* proj : {"query", "key", "value"}) dense(pre + "attention.self." + proj, H, H);
    dense(pre + "attention.output.dense", H, H);
    norm(pre + "attention.output.LayerNorm");
    dense(pre + "intermediate.dense", c.intermediate, H);
    dense(pre + "output.dense", H, c.intermediate);
    norm(pre + "output.LayerNorm");
  }
  dense("bert.pooler.dense", H, H);
  dense("classifier", c.num_labels, H);
}

BertClassifier::~BertClassifier() = default;

std::vector<std::string> BertClassifier::parameter_names() const {
  std::vector<std::string> names;
  for (const auto& [name, param] : params_)
    if (name.compare(0, 5, "bert.") == 0 || name.compare(0, 11, "classifier.") == 0)
      if (name.find(".lora_") == std::string::npos && name.find("_adapter.") == std::string::npos &&
          name.find(".ia3_l.") == std::string::npos)
        names.push_back(name);
  return names;
}

void BertClassifier::reset_cache(int64_t) {
  throw Error(ErrorCode::Unsupported, "A sequence classifier (BERT) does not generate text");
}
Tensor BertClassifier::step(const Tensor&) {
  throw Error(ErrorCode::Unsupported, "A sequence classifier (BERT) does not generate text");
}

Tensor BertClassifier::forward(const Tensor& ids, const Tensor* key_valid, bool train) {
  const BertConfig& c = config_;
  PEFT_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I32, ErrorCode::Shape,
             "Expected i32 ids of shape [batch, seq] but received " + std::string(dtype_name(ids.dtype())) + " " +
                 shape_to_string(ids.shape()));
  if (key_valid)
    PEFT_CHECK(key_valid->dtype() == DType::U8 && key_valid->shape() == ids.shape(), ErrorCode::Shape,
               "Expected a u8 attention mask of shape " + shape_to_string(ids.shape()));
  PEFT_CHECK(active_prompt() == nullptr && active_prefix() == nullptr, ErrorCode::Unsupported,
             "Prompt and prefix tuning are not available for the BERT classifier");
  if (!selection_.per_row.empty())
    PEFT_CHECK(static_cast<int64_t>(selection_.per_row.size()) == ids.dim(0), ErrorCode::Shape,
               "Expected one adapter name per batch row (" + std::to_string(ids.dim(0)) + ")");
  const int64_t B = ids.dim(0), T = ids.dim(1), M = B * T, H = c.hidden, D = H / c.heads, F = c.intermediate;
  PEFT_CHECK(T <= c.positions, ErrorCode::Range,
             "Expected at most " + std::to_string(c.positions) + " tokens (max_position_embeddings) but received " +
                 std::to_string(T));
  nn::AdapterSelection sel = selection_;
  sel.rows_per_item = T;
  sel.train = train && sel.dropout;  // an evaluation-mode loss runs no dropout
  auto layer_norm = [&](const std::string& module, const float* in, float* out, Norm& n) {
    n.mean = f32({M});
    n.rstd = f32({M});
    kernels::layernorm_forward(M, H, in, weight_f32(module + ".weight"), weight_f32(module + ".bias"), c.ln_eps, out,
                               p(n.mean), p(n.rstd));
  };

  // Embeddings: word + position + token type 0, then LayerNorm.
  TensorPtr sum = f32({M, H});
  embed_tokens(weight("bert.embeddings.word_embeddings.weight"), nullptr, embedding_lora_, sel, ids, B, T, H, p(sum));
  std::vector<float> row(static_cast<size_t>(H));
  const Tensor& pos = weight("bert.embeddings.position_embeddings.weight");
  const Tensor& type = weight("bert.embeddings.token_type_embeddings.weight");
  for (int64_t i = 0; i < M; ++i) {
    kernels::convert(row.data(), DType::F32, static_cast<const char*>(pos.data()) + (i % T) * H * dtype_size(pos.dtype()),
                     pos.dtype(), H);
    add_into(H, row.data(), p(sum) + i * H);
    kernels::convert(row.data(), DType::F32, type.data(), type.dtype(), H);
    add_into(H, row.data(), p(sum) + i * H);
  }
  Norm emb_norm;
  TensorPtr x = f32({M, H});
  layer_norm("bert.embeddings.LayerNorm", p(sum), p(x), emb_norm);

  cache_.clear();
  const kernels::AttentionShape as{B, T, T, c.heads, c.heads, D};
  const kernels::AttentionMask mask{false, key_valid ? key_valid->data_as<uint8_t>() : nullptr};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = "bert.encoder.layer." + std::to_string(l) + ".";
    auto lin = [&](const std::string& name) -> const nn::Linear& { return *linears_.at(pre + name); };
    LayerCache lc;
    auto kept = [&](nn::LinearCache& cache) { return train ? &cache : nullptr; };
    lc.x = x;
    lc.q = f32({M, H});
    lc.k = f32({M, H});
    lc.v = f32({M, H});
    lin("attention.self.query").forward(sel, M, p(x), p(lc.q), kept(lc.query));
    lin("attention.self.key").forward(sel, M, p(x), p(lc.k), kept(lc.key));
    lin("attention.self.value").forward(sel, M, p(x), p(lc.v), kept(lc.value));
    lc.attn = f32({M, H});
    lc.lse = f32({B, c.heads, T});
    kernels::attention_forward(as, mask, scale, p(lc.q), p(lc.k), p(lc.v), p(lc.attn), p(lc.lse));
    // h1 = LN(x + dense(attn) (+ adapters))
    lc.pre1 = f32({M, H});
    lin("attention.output.dense").forward(sel, M, p(lc.attn), p(lc.pre1), kept(lc.attn_dense));
    const nn::BottleneckSite& attn_site = *attn_sites_[static_cast<size_t>(l)];
    if (!attn_site.empty()) {
      lc.attn_out = f32({M, H});
      std::memcpy(p(lc.attn_out), p(lc.pre1), sizeof(float) * M * H);
      attn_site.forward(sel, false, M, p(lc.attn_out), p(lc.pre1), train ? &lc.attn_adapters : nullptr);
      attn_site.forward(sel, true, M, p(x), p(lc.pre1), train ? &lc.attn_adapters : nullptr);
    }
    add_into(M * H, p(x), p(lc.pre1));
    lc.h1 = f32({M, H});
    layer_norm(pre + "attention.output.LayerNorm", p(lc.pre1), p(lc.h1), lc.n1);
    // h2 = LN(h1 + dense(gelu(inter(h1))) (+ adapters))
    lc.inter = f32({M, F});
    lc.act = f32({M, F});
    lin("intermediate.dense").forward(sel, M, p(lc.h1), p(lc.inter), kept(lc.inter_dense));
    gelu_erf(M * F, p(lc.inter), p(lc.act));
    lc.pre2 = f32({M, H});
    lin("output.dense").forward(sel, M, p(lc.act), p(lc.pre2), kept(lc.out_dense));
    const nn::BottleneckSite& mlp_site = *mlp_sites_[static_cast<size_t>(l)];
    if (!mlp_site.empty()) {
      lc.ffn_out = f32({M, H});
      std::memcpy(p(lc.ffn_out), p(lc.pre2), sizeof(float) * M * H);
      mlp_site.forward(sel, false, M, p(lc.ffn_out), p(lc.pre2), train ? &lc.mlp_adapters : nullptr);
      mlp_site.forward(sel, true, M, p(lc.h1), p(lc.pre2), train ? &lc.mlp_adapters : nullptr);
    }
    add_into(M * H, p(lc.h1), p(lc.pre2));
    TensorPtr next = f32({M, H});
    layer_norm(pre + "output.LayerNorm", p(lc.pre2), p(next), lc.n2);
    if (train) cache_.push_back(std::move(lc));
    x = next;
  }
  // Pooler on the first token of each sequence, then the classifier.
  TensorPtr cls = f32({B, H}), pooled = f32({B, H});
  for (int64_t b = 0; b < B; ++b) std::memcpy(p(cls) + b * H, p(x) + b * T * H, sizeof(float) * H);
  nn::AdapterSelection per_item = sel;
  per_item.rows_per_item = 1;
  linears_.at("bert.pooler.dense")->forward(per_item, B, p(cls), p(pooled), train ? &pooler_cache_ : nullptr);
  for (int64_t i = 0; i < B * H; ++i) p(pooled)[i] = std::tanh(p(pooled)[i]);
  Tensor logits = Tensor::uninitialized(DType::F32, {B, c.num_labels});
  linears_.at("classifier")->forward(per_item, B, p(pooled), logits.data_as<float>(), train ? &classifier_cache_ : nullptr);
  if (train) {
    train_selection_ = sel;
    ids_ = std::make_shared<Tensor>(ids);
    key_valid_ = key_valid ? std::make_shared<Tensor>(*key_valid) : nullptr;
    emb_sum_ = sum;
    emb_mean_ = emb_norm.mean;
    emb_rstd_ = emb_norm.rstd;
    final_hidden_ = x;
    cls_ = cls;
    pooled_ = pooled;
    batch_ = B;
    seq_ = T;
  }
  return logits;
}

double BertClassifier::loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) {
  const BertConfig& c = config_;
  PEFT_CHECK(final_hidden_ != nullptr, ErrorCode::Argument, "loss_backward needs a forward with train = true first");
  const int64_t B = batch_, T = seq_, M = B * T, H = c.hidden, D = H / c.heads, F = c.intermediate, C = c.num_labels;
  PEFT_CHECK(logits.shape() == Shape({B, C}), ErrorCode::Shape, "logits do not match the last forward");
  const bool regression = C == 1;
  PEFT_CHECK(labels.numel() == B && labels.dtype() == (regression ? DType::F32 : DType::I32), ErrorCode::Shape,
             std::string("Expected ") + (regression ? "f32 targets" : "i32 class ids") + " for " + std::to_string(B) +
                 " sequences but received " + dtype_name(labels.dtype()) + " " + shape_to_string(labels.shape()));
  if (!accumulate)
    for (auto& [name, param] : params_) param->zero_grad();
  const nn::AdapterSelection& sel = train_selection_;
  nn::AdapterSelection per_item = sel;
  per_item.rows_per_item = 1;

  // d logits: cross-entropy (mean over labelled rows) or mean squared error.
  std::vector<float> dlogits(static_cast<size_t>(B * C));
  double loss = 0;
  if (regression) {
    for (int64_t b = 0; b < B; ++b) {
      const float diff = logits.data_as<float>()[b] - labels.data_as<float>()[b];
      loss += static_cast<double>(diff) * diff / static_cast<double>(B);
      dlogits[static_cast<size_t>(b)] = 2.0f * diff / static_cast<float>(B);
    }
  } else {
    for (int64_t b = 0; b < B; ++b) {
      const int32_t y = labels.data_as<int32_t>()[b];
      PEFT_CHECK(y == -100 || (y >= 0 && y < C), ErrorCode::Range,
                 "Expected class ids in [0, " + std::to_string(C) + ") or -100 but labels[" + std::to_string(b) + "] is " +
                     std::to_string(y));
    }
    std::vector<float> row_loss(static_cast<size_t>(B));
    const kernels::CrossEntropyResult ce = kernels::cross_entropy(B, C, logits.data_as<float>(), labels.data_as<int32_t>(),
                                                                  -100, 0.0, row_loss.data(), dlogits.data());
    loss = ce.count ? ce.loss_sum / static_cast<double>(ce.count) : 0.0;
  }

  std::vector<float> d_pooled(static_cast<size_t>(B * H)), d_cls(static_cast<size_t>(B * H));
  linears_.at("classifier")->backward(per_item, B, dlogits.data(), p(pooled_), classifier_cache_, d_pooled.data(), false);
  for (int64_t i = 0; i < B * H; ++i) d_pooled[static_cast<size_t>(i)] *= 1.0f - p(pooled_)[i] * p(pooled_)[i];
  linears_.at("bert.pooler.dense")->backward(per_item, B, d_pooled.data(), p(cls_), pooler_cache_, d_cls.data(), false);
  TensorPtr dx = std::make_shared<Tensor>(DType::F32, Shape{M, H});
  for (int64_t b = 0; b < B; ++b) std::memcpy(p(dx) + b * T * H, d_cls.data() + b * H, sizeof(float) * H);

  const kernels::AttentionShape as{B, T, T, c.heads, c.heads, D};
  const kernels::AttentionMask mask{false, key_valid_ ? key_valid_->data_as<uint8_t>() : nullptr};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  auto norm_backward = [&](const std::string& module, const float* dy, const float* in, const Norm& n, float* d_in) {
    nn::Param& w = parameter(module + ".weight");
    nn::Param& b = parameter(module + ".bias");
    kernels::layernorm_backward(M, H, dy, in, w.data(), p(n.mean), p(n.rstd), d_in, w.grad_data(), b.grad_data(), true);
  };
  TensorPtr d_pre = f32({M, H}), d_act = f32({M, F}), d_h1 = f32({M, H}), d_attn = f32({M, H});
  TensorPtr dq = f32({M, H}), dk = f32({M, H}), dv = f32({M, H}), d_x = f32({M, H});
  for (int64_t l = c.layers - 1; l >= 0; --l) {
    const LayerCache& lc = cache_[static_cast<size_t>(l)];
    const std::string pre = "bert.encoder.layer." + std::to_string(l) + ".";
    auto lin = [&](const std::string& name) -> const nn::Linear& { return *linears_.at(pre + name); };
    // h2 = LN(h1 + f): d pre2 from dx; f's gradient is d pre2; h1 gets d pre2 too.
    norm_backward(pre + "output.LayerNorm", p(dx), p(lc.pre2), lc.n2, p(d_pre));
    std::memcpy(p(d_h1), p(d_pre), sizeof(float) * M * H);
    const nn::BottleneckSite& mlp_site = *mlp_sites_[static_cast<size_t>(l)];
    std::vector<float> d_ffn;
    const float* d_f = p(d_pre);
    if (!mlp_site.empty()) {
      d_ffn.assign(p(d_pre), p(d_pre) + M * H);
      mlp_site.backward(sel, false, M, p(d_pre), p(lc.ffn_out), lc.mlp_adapters, d_ffn.data());
      mlp_site.backward(sel, true, M, p(d_pre), p(lc.h1), lc.mlp_adapters, p(d_h1));
      d_f = d_ffn.data();
    }
    lin("output.dense").backward(sel, M, d_f, p(lc.act), lc.out_dense, p(d_act), false);
    gelu_erf_backward(M * F, p(d_act), p(lc.inter), p(d_act));
    lin("intermediate.dense").backward(sel, M, p(d_act), p(lc.h1), lc.inter_dense, p(d_h1), true);
    // h1 = LN(x + o)
    norm_backward(pre + "attention.output.LayerNorm", p(d_h1), p(lc.pre1), lc.n1, p(d_pre));
    std::memcpy(p(d_x), p(d_pre), sizeof(float) * M * H);
    const nn::BottleneckSite& attn_site = *attn_sites_[static_cast<size_t>(l)];
    std::vector<float> d_o_buf;
    const float* d_o = p(d_pre);
    if (!attn_site.empty()) {
      d_o_buf.assign(p(d_pre), p(d_pre) + M * H);
      attn_site.backward(sel, false, M, p(d_pre), p(lc.attn_out), lc.attn_adapters, d_o_buf.data());
      attn_site.backward(sel, true, M, p(d_pre), p(lc.x), lc.attn_adapters, p(d_x));
      d_o = d_o_buf.data();
    }
    lin("attention.output.dense").backward(sel, M, d_o, p(lc.attn), lc.attn_dense, p(d_attn), false);
    kernels::attention_backward(as, mask, scale, p(lc.q), p(lc.k), p(lc.v), p(lc.attn), p(d_attn), p(lc.lse), p(dq),
                                p(dk), p(dv));
    lin("attention.self.query").backward(sel, M, p(dq), p(lc.x), lc.query, p(d_x), true);
    lin("attention.self.key").backward(sel, M, p(dk), p(lc.x), lc.key, p(d_x), true);
    lin("attention.self.value").backward(sel, M, p(dv), p(lc.x), lc.value, p(d_x), true);
    std::swap(dx, d_x);
  }
  // Embeddings: sum = word + position + type 0, x0 = LN(sum).
  std::vector<float> d_sum(static_cast<size_t>(M * H));
  const Norm emb{emb_mean_, emb_rstd_};
  norm_backward("bert.embeddings.LayerNorm", p(dx), p(emb_sum_), emb, d_sum.data());
  if (float* g = parameter("bert.embeddings.position_embeddings.weight").grad_data())
    for (int64_t i = 0; i < M; ++i) add_into(H, d_sum.data() + i * H, g + (i % T) * H);
  if (float* g = parameter("bert.embeddings.token_type_embeddings.weight").grad_data())
    for (int64_t i = 0; i < M; ++i) add_into(H, d_sum.data() + i * H, g);
  embed_tokens_backward(parameter("bert.embeddings.word_embeddings.weight"), nullptr, embedding_lora_, sel, *ids_, B, T, H,
                        d_sum.data());
  return loss;
}

}  // namespace peft::model
