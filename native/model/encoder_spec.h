// What distinguishes one encoder classifier from another (BERT and its relatives): sizes, the
// activation, and the Hugging Face names of its embeddings, blocks and head. EncoderModel
// (model/encoder.h) builds any of them; specs/ holds the architectures as such specs.
#pragma once
#include <cstdint>
#include <string>

#include "nn/mlp.h"

namespace peft::model {

struct EncoderSpec {
  std::string architecture;  // for messages
  int64_t hidden = 0, layers = 0, heads = 0, intermediate = 0, vocab = 0;
  int64_t positions = 0;   // max_position_embeddings
  int64_t type_vocab = 0;  // token-type embeddings (type 0 is added to every token)
  int64_t num_labels = 2;  // 1: regression (mean squared error), else classification (cross-entropy)
  float norm_eps = 1e-12f;
  nn::MlpKind mlp = nn::MlpKind::GeluErf;

  // Hugging Face names: embeddings and the head in full, the block's modules after layer_prefix + N + ".".
  struct Names {
    std::string word, position, token_type, embed_norm;  // modules (".weight" / ".bias" follow)
    std::string layer_prefix;
    std::string q, k, v, attn_out, attn_norm, intermediate, output, output_norm;
    std::string pooler;      // dense + tanh on the first token
    std::string classifier;  // [num_labels, hidden]
  } names;
};

}  // namespace peft::model
