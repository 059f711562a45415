#include "model/specs/bert.h"

#include "core/error.h"

namespace peft::model {

EncoderSpec bert_spec(const BertConfig& c) {
  PEFT_CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.hidden % c.heads == 0 && c.intermediate > 0 && c.vocab > 0 &&
                 c.positions > 0 && c.type_vocab > 0 && c.num_labels > 0,
             ErrorCode::Config, "Expected positive sizes and a hidden size divisible by the heads in the BERT config");
  EncoderSpec s;
  s.architecture = "BERT";
  s.hidden = c.hidden;
  s.layers = c.layers;
  s.heads = c.heads;
  s.intermediate = c.intermediate;
  s.vocab = c.vocab;
  s.positions = c.positions;
  s.type_vocab = c.type_vocab;
  s.num_labels = c.num_labels;
  s.norm_eps = c.ln_eps;
  s.mlp = nn::MlpKind::GeluErf;
  EncoderSpec::Names& n = s.names;
  n.word = "bert.embeddings.word_embeddings";
  n.position = "bert.embeddings.position_embeddings";
  n.token_type = "bert.embeddings.token_type_embeddings";
  n.embed_norm = "bert.embeddings.LayerNorm";
  n.layer_prefix = "bert.encoder.layer.";
  n.q = "attention.self.query";
  n.k = "attention.self.key";
  n.v = "attention.self.value";
  n.attn_out = "attention.output.dense";
  n.attn_norm = "attention.output.LayerNorm";
  n.intermediate = "intermediate.dense";
  n.output = "output.dense";
  n.output_norm = "output.LayerNorm";
  n.pooler = "bert.pooler.dense";
  n.classifier = "classifier";
  return s;
}

}  // namespace peft::model
