// A BERT-style encoder with a sequence-classification head (Hugging Face's
// BertForSequenceClassification names: bert.embeddings.*, bert.encoder.layer.N.attention.self.query /
// key / value, attention.output.dense, attention.output.LayerNorm, intermediate.dense, output.dense,
// output.LayerNorm, bert.pooler.dense, classifier): word + position + token-type embeddings and a
// LayerNorm, post-LayerNorm blocks with bidirectional attention over the non-padding tokens, GELU
// (erf), the pooler (tanh of a dense layer on the first token) and a linear classifier. Every dense
// layer is an nn::Linear that PEFT adapters attach to; the blocks are nn::EncoderBlock modules.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/adapter_host.h"
#include "nn/encoder_block.h"

namespace peft::model {

struct BertConfig {
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t intermediate = 0;
  int64_t vocab = 0;
  int64_t positions = 0;    // max_position_embeddings
  int64_t type_vocab = 0;   // type_vocab_size
  int64_t num_labels = 2;   // 1: regression (mean squared error), else classification (cross-entropy)
  float ln_eps = 1e-12f;
};

class BertClassifier : public AdapterHost {
 public:
  BertClassifier(BertConfig config, TensorMap weights);
  ~BertClassifier() override;

  const BertConfig& config() const { return config_; }
  std::vector<std::string> parameter_names() const override;
  // ids: [B, T] i32; key_valid: [B, T] u8 or null. Returns logits [B, num_labels].
  Tensor forward(const Tensor& ids, const Tensor* key_valid, bool train) override;
  void reset_cache(int64_t max_len) override;  // E_UNSUPPORTED: an encoder does not generate
  Tensor step(const Tensor& ids) override;     // E_UNSUPPORTED
  // labels: B class ids (i32, any shape with B elements; -100 ignored), or for regression B targets
  // as f32. Mean loss over the batch.
  double loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) override;

 private:
  BertConfig config_;
  nn::Norm emb_norm_;
  std::vector<nn::EncoderBlock> blocks_;
  // The last training forward.
  nn::AttentionStep train_step_;
  std::vector<nn::EncoderBlockCache> cache_;
  nn::NormCache emb_norm_cache_;
  std::shared_ptr<Tensor> ids_, key_valid_, emb_sum_, final_hidden_, cls_, pooled_;
  nn::LinearCache pooler_cache_, classifier_cache_;
  int64_t batch_ = 0, seq_ = 0;
};

}  // namespace peft::model
