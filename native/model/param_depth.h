// Where a parameter sits in a decoder, counted from the input: 0 for the embeddings and virtual
// tokens, then each block's steps (nn::DecoderBlock::kInputNorm ..), the final norm, the head. The
// backward stops as soon as nothing below the current point trains (with LoRA on the top layers
// only, the bottom layers run no backward at all). Models set each Param's depth from their structure.
#pragma once
#include <climits>
#include <cstdint>

#include "nn/decoder_block.h"

namespace peft::model {

inline constexpr int kNoTrainable = INT_MAX;

inline int layer_depth(int64_t layer) { return 1 + nn::DecoderBlock::kSteps * static_cast<int>(layer); }
inline int final_norm_depth(int64_t layers) { return layer_depth(layers); }
inline int head_depth(int64_t layers) { return layer_depth(layers) + 1; }

}  // namespace peft::model
