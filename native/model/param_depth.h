// Where a parameter sits in the Llama network, counted from the input: the backward pass stops as
// soon as nothing below the current point trains (with LoRA on the top layers only, the bottom
// layers run no backward at all).
#pragma once
#include <climits>
#include <cstdint>
#include <string>

namespace peft::model {

// Steps inside one decoder layer, in forward order.
inline constexpr int kInputNorm = 0, kQkv = 1, kOutProj = 2, kPostNorm = 3, kGateUp = 4, kDown = 5, kLayerSteps = 6;
inline constexpr int kNoTrainable = INT_MAX;

inline int layer_depth(int64_t layer) { return 1 + kLayerSteps * static_cast<int>(layer); }
inline int final_norm_depth(int64_t layers) { return layer_depth(layers); }
inline int head_depth(int64_t layers) { return layer_depth(layers) + 1; }

// Depth of a parameter by name: 0 for the embeddings and virtual tokens, then per layer and step;
// adapter parameters sit with the layer they attach to.
int param_depth(const std::string& name, int64_t layers);

}  // namespace peft::model
