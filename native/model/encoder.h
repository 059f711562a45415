// An encoder with a sequence-classification head, built from an EncoderSpec (model/encoder_spec.h;
// BERT is specs/bert): word + position + token-type embeddings and a LayerNorm, post-LayerNorm blocks
// (nn::EncoderBlock) with bidirectional attention over the non-padding tokens, the pooler (tanh of a
// dense layer on the first token) and a linear classifier. Every dense layer is an nn::Linear that
// PEFT adapters attach to.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/adapter_host.h"
#include "model/encoder_spec.h"
#include "nn/encoder_block.h"

namespace peft::model {

class EncoderModel : public AdapterHost {
 public:
  EncoderModel(EncoderSpec spec, TensorMap weights);
  ~EncoderModel() override;

  const EncoderSpec& spec() const { return spec_; }
  std::vector<std::string> parameter_names() const override;
  // ids: [B, T] i32; key_valid: [B, T] u8 or null. Returns logits [B, num_labels].
  Tensor forward(const Tensor& ids, const Tensor* key_valid, bool train) override;
  void reset_cache(int64_t max_len) override;  // E_UNSUPPORTED: an encoder does not generate
  Tensor step(const Tensor& ids) override;     // E_UNSUPPORTED
  // labels: B class ids (i32, any shape with B elements; -100 ignored), or for regression B targets
  // as f32. Mean loss over the batch.
  double loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) override;

 private:
  EncoderSpec spec_;
  std::vector<std::string> base_names_;  // the weights it was built from, in name order
  nn::Norm emb_norm_;
  std::vector<nn::EncoderBlock> blocks_;
  // The last training forward.
  nn::AttentionStep train_step_;
  std::vector<nn::EncoderBlockCache> cache_;
  nn::NormCache emb_norm_cache_;
  std::shared_ptr<Tensor> ids_, key_valid_, emb_sum_, final_hidden_, cls_, pre_pool_, pooled_;
  nn::LinearCache pooler_cache_, classifier_cache_;
  int64_t batch_ = 0, seq_ = 0;
};

}  // namespace peft::model
