// BERT as an encoder spec (BertForSequenceClassification's names: bert.embeddings.*,
// bert.encoder.layer.N.attention.self.query / key / value, attention.output.dense,
// attention.output.LayerNorm, intermediate.dense, output.dense, output.LayerNorm, bert.pooler.dense,
// classifier): word + position + token-type embeddings and a LayerNorm, post-LayerNorm blocks with
// bidirectional attention, GELU (erf), the pooler and a linear classifier.
#pragma once
#include "model/encoder_spec.h"

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

EncoderSpec bert_spec(const BertConfig& c);

}  // namespace peft::model
