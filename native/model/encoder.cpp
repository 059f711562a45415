#include "model/encoder.h"

#include <algorithm>
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

using nn::f32;
using nn::p;
using nn::TensorPtr;

HostDims encoder_dims(const EncoderSpec& s) {
  return HostDims{s.hidden, s.vocab, s.layers, s.hidden, false, s.names.word, s.names.layer_prefix};
}

}  // namespace

EncoderModel::EncoderModel(EncoderSpec spec, TensorMap weights)
    : AdapterHost(encoder_dims(spec)), spec_(std::move(spec)) {
  const EncoderSpec& c = spec_;
  const EncoderSpec::Names& n = c.names;
  PEFT_CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.hidden % c.heads == 0 && c.intermediate > 0 && c.vocab > 0 &&
                 c.positions > 0 && c.type_vocab > 0 && c.num_labels > 0,
             ErrorCode::Config, "Expected positive sizes and a hidden size divisible by the heads in the " + c.architecture + " config");
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
    base_names_.push_back(name);
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
  expect(n.word + ".weight", {c.vocab, H});
  expect(n.position + ".weight", {c.positions, H});
  expect(n.token_type + ".weight", {c.type_vocab, H});
  norm(n.embed_norm);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = n.layer_prefix + std::to_string(l) + ".";
    for (const std::string* proj : {&n.q, &n.k, &n.v}) dense(pre + *proj, H, H);
    dense(pre + n.attn_out, H, H);
    norm(pre + n.attn_norm);
    dense(pre + n.intermediate, c.intermediate, H);
    dense(pre + n.output, H, c.intermediate);
    norm(pre + n.output_norm);
  }
  dense(n.pooler, H, H);
  dense(n.classifier, c.num_labels, H);
  std::sort(base_names_.begin(), base_names_.end());
  auto layer_norm = [&](const std::string& module) {
    return nn::Norm(nn::NormKind::Layer, params_.at(module + ".weight"), params_.at(module + ".bias"), c.norm_eps, false);
  };
  emb_norm_ = layer_norm(n.embed_norm);
  const nn::AttentionConfig ac{H, c.heads, c.heads, H / c.heads, nullptr};
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string pre = n.layer_prefix + std::to_string(l) + ".";
    auto lin = [&](const std::string& name) { return linears_.at(pre + name).get(); };
    nn::Attention attention(ac, l, lin(n.q), lin(n.k), lin(n.v), nullptr, lin(n.attn_out));
    nn::Mlp mlp(c.mlp, lin(n.intermediate), nullptr, lin(n.output));
    blocks_.emplace_back(std::move(attention), attn_sites_[static_cast<size_t>(l)].get(), layer_norm(pre + n.attn_norm),
                         std::move(mlp), mlp_sites_[static_cast<size_t>(l)].get(), layer_norm(pre + n.output_norm));
  }
}

EncoderModel::~EncoderModel() = default;

std::vector<std::string> EncoderModel::parameter_names() const { return base_names_; }

void EncoderModel::reset_cache(int64_t) {
  throw Error(ErrorCode::Unsupported, "A sequence classifier (" + spec_.architecture + ") does not generate text");
}
Tensor EncoderModel::step(const Tensor&) {
  throw Error(ErrorCode::Unsupported, "A sequence classifier (" + spec_.architecture + ") does not generate text");
}

Tensor EncoderModel::forward(const Tensor& ids, const Tensor* key_valid, bool train) {
  const EncoderSpec& c = spec_;
  PEFT_CHECK(ids.ndim() == 2 && ids.dtype() == DType::I32, ErrorCode::Shape,
             "Expected i32 ids of shape [batch, seq] but received " + std::string(dtype_name(ids.dtype())) + " " +
                 shape_to_string(ids.shape()));
  if (key_valid)
    PEFT_CHECK(key_valid->dtype() == DType::U8 && key_valid->shape() == ids.shape(), ErrorCode::Shape,
               "Expected a u8 attention mask of shape " + shape_to_string(ids.shape()));
  PEFT_CHECK(active_prompt() == nullptr && active_prefix() == nullptr, ErrorCode::Unsupported,
             "Prompt and prefix tuning are not available for the " + spec_.architecture + " classifier");
  if (!selection_.per_row.empty())
    PEFT_CHECK(static_cast<int64_t>(selection_.per_row.size()) == ids.dim(0), ErrorCode::Shape,
               "Expected one adapter name per batch row (" + std::to_string(ids.dim(0)) + ")");
  const int64_t B = ids.dim(0), T = ids.dim(1), M = B * T, H = c.hidden;
  PEFT_CHECK(T <= c.positions, ErrorCode::Range,
             "Expected at most " + std::to_string(c.positions) + " tokens (max_position_embeddings) but received " +
                 std::to_string(T));
  nn::AdapterSelection sel = selection_;
  sel.rows_per_item = T;
  sel.train = train && sel.dropout;  // an evaluation-mode loss runs no dropout
  // Embeddings: word + position + token type 0, then LayerNorm.
  TensorPtr sum = f32(ctx_, {M, H});
  embed_tokens(ctx_, weight(c.names.word + ".weight"), nullptr, embedding_lora_, sel, ids, B, T, H, p(sum));
  std::vector<float> row(static_cast<size_t>(H));
  const Tensor& pos = weight(c.names.position + ".weight");
  const Tensor& type = weight(c.names.token_type + ".weight");
  for (int64_t i = 0; i < M; ++i) {
    ctx_.convert(row.data(), DType::F32, static_cast<const char*>(pos.data()) + (i % T) * H * dtype_size(pos.dtype()),
                     pos.dtype(), H);
    ctx_.add_values(H, row.data(), p(sum) + i * H);
    ctx_.convert(row.data(), DType::F32, type.data(), type.dtype(), H);
    ctx_.add_values(H, row.data(), p(sum) + i * H);
  }
  nn::NormCache emb_cache;
  TensorPtr x = f32(ctx_, {M, H});
  emb_norm_.forward(ctx_, M, p(sum), p(x), emb_cache);

  nn::AttentionStep step;
  step.sel = sel;
  step.batch = B;
  step.seq = T;
  step.kv_len = T;
  step.mask = kernels::AttentionMask{false, key_valid ? key_valid->data_as<uint8_t>() : nullptr};
  step.layers = c.layers;
  step.train = train;
  cache_.clear();
  for (int64_t l = 0; l < c.layers; ++l) {
    nn::EncoderBlockCache lc;
    x = blocks_[static_cast<size_t>(l)].forward(ctx_, step, x, lc);
    if (train) cache_.push_back(std::move(lc));
  }
  // Pooler on the first token of each sequence, then the classifier.
  TensorPtr cls = f32(ctx_, {B, H}), pre_pool = f32(ctx_, {B, H}), pooled = f32(ctx_, {B, H});
  ctx_.copy_columns(B, H, T * H, 0, p(x), p(cls));  // row 0 of each sequence
  nn::AdapterSelection per_item = sel;
  per_item.rows_per_item = 1;
  linears_.at(c.names.pooler)->forward(ctx_, per_item, B, p(cls), p(pre_pool), train ? &pooler_cache_ : nullptr);
  ctx_.pointwise_forward(kernels::Pointwise::Tanh, B * H, p(pre_pool), p(pooled));
  Tensor logits = Tensor::uninitialized(DType::F32, {B, c.num_labels});
  linears_.at(c.names.classifier)->forward(ctx_, per_item, B, p(pooled), logits.data_as<float>(), train ? &classifier_cache_ : nullptr);
  if (train) {
    ids_ = std::make_shared<Tensor>(ids);
    key_valid_ = key_valid ? std::make_shared<Tensor>(*key_valid) : nullptr;
    train_step_ = step;
    train_step_.mask.key_valid = key_valid_ ? key_valid_->data_as<uint8_t>() : nullptr;  // the kept copy
    emb_sum_ = sum;
    emb_norm_cache_ = emb_cache;
    final_hidden_ = x;
    cls_ = cls;
    pre_pool_ = pre_pool;
    pooled_ = pooled;
    batch_ = B;
    seq_ = T;
  }
  return logits;
}

double EncoderModel::loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) {
  const EncoderSpec& c = spec_;
  PEFT_CHECK(final_hidden_ != nullptr, ErrorCode::Argument, "loss_backward needs a forward with train = true first");
  const int64_t B = batch_, T = seq_, M = B * T, H = c.hidden, C = c.num_labels;
  PEFT_CHECK(logits.shape() == Shape({B, C}), ErrorCode::Shape, "logits do not match the last forward");
  const bool regression = C == 1;
  PEFT_CHECK(labels.numel() == B && labels.dtype() == (regression ? DType::F32 : DType::I32), ErrorCode::Shape,
             std::string("Expected ") + (regression ? "f32 targets" : "i32 class ids") + " for " + std::to_string(B) +
                 " sequences but received " + dtype_name(labels.dtype()) + " " + shape_to_string(labels.shape()));
  if (!accumulate)
    for (auto& [name, param] : params_) param->zero_grad();
  const nn::AdapterSelection& sel = train_step_.sel;
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
    const kernels::CrossEntropyResult ce = ctx_.cross_entropy(B, C, logits.data_as<float>(), labels.data_as<int32_t>(),
                                                                  -100, 0.0, row_loss.data(), dlogits.data());
    loss = ce.count ? ce.loss_sum / static_cast<double>(ce.count) : 0.0;
  }

  std::vector<float> d_pooled(static_cast<size_t>(B * H)), d_cls(static_cast<size_t>(B * H));
  linears_.at(c.names.classifier)->backward(ctx_, per_item, B, dlogits.data(), p(pooled_), classifier_cache_, d_pooled.data(), false);
  ctx_.pointwise_backward(kernels::Pointwise::Tanh, B * H, d_pooled.data(), p(pre_pool_), d_pooled.data());
  linears_.at(c.names.pooler)->backward(ctx_, per_item, B, d_pooled.data(), p(cls_), pooler_cache_, d_cls.data(), false);
  TensorPtr dx = std::make_shared<Tensor>(DType::F32, Shape{M, H});
  ctx_.place_columns(B, H, T * H, 0, d_cls.data(), p(dx));  // the gradient reaches row 0 of each sequence

  nn::Workspace ws;
  for (int64_t l = c.layers - 1; l >= 0; --l) blocks_[static_cast<size_t>(l)].backward(ctx_, train_step_, cache_[static_cast<size_t>(l)], p(dx), ws);
  // Embeddings: sum = word + position + type 0, x0 = LN(sum).
  std::vector<float> d_sum(static_cast<size_t>(M * H));
  emb_norm_.backward(ctx_, M, p(dx), p(emb_sum_), emb_norm_cache_, d_sum.data());
  if (float* g = parameter(c.names.position + ".weight").grad_data())
    for (int64_t i = 0; i < M; ++i) ctx_.add_values(H, d_sum.data() + i * H, g + (i % T) * H);
  if (float* g = parameter(c.names.token_type + ".weight").grad_data())
    for (int64_t i = 0; i < M; ++i) ctx_.add_values(H, d_sum.data() + i * H, g);
  embed_tokens_backward(ctx_, parameter(c.names.word + ".weight"), nullptr, embedding_lora_, sel, *ids_, B, T, H,
                        d_sum.data());
  return loss;
}

}  // namespace peft::model
