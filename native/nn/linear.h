// A linear layer y = x·Wᵀ + b (W [out, in], f32 or bf16; b [out] f32 or none) that PEFT adapters
// attach to: LoRA (and DoRA) branches and IA3 scaling vectors, several per layer, applied by name
// according to an AdapterSelection. Forward keeps only what the backward needs; backward writes
// the gradients of the parameters that train and nothing else.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/adapter_selection.h"
#include "nn/param.h"

namespace peft::nn {

struct LoraWeights {
  ParamPtr a;          // lora_A [r, in] f32
  ParamPtr b;          // lora_B [out, r] f32
  ParamPtr magnitude;  // DoRA's magnitude vector [out] f32, or null for plain LoRA
  float scaling = 1;   // lora_alpha / r (or / sqrt(r) with rsLoRA)
  float dropout = 0;   // probability in [0, 1)
  bool merged = false;
  std::vector<float> merged_norm;  // DoRA: ‖W + s·B·A‖ per row at merge time, for unmerge
};

struct Ia3Weights {
  ParamPtr scale;  // [in] for a feed-forward layer (scales the input), else [out] (scales the output)
  bool feedforward = false;
  bool merged = false;
};

// What a training forward keeps for the backward.
struct LinearCache {
  std::shared_ptr<Tensor> scaled_input;  // [m, in] x after feed-forward IA3 scaling; null when x is used as is
  std::shared_ptr<Tensor> unscaled_output;  // [m, out] output before IA3 output scaling; null without it
  struct Lora {
    std::shared_ptr<Tensor> xa;    // [m, r] dropout(x)·Aᵀ (rows the adapter applies to)
    std::shared_ptr<Tensor> base;  // DoRA: [m, out] dropout(x)·Wᵀ
    std::vector<float> norm;       // DoRA: ‖W + s·B·A‖ per output row (treated as a constant)
  };
  std::map<std::string, Lora> lora;
};

class Linear {
 public:
  // weight: [out, in] f32 or bf16; bias: [out] f32, or null.
  Linear(std::string name, ParamPtr weight, ParamPtr bias);

  const std::string& name() const { return name_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  Param& weight() const { return *weight_; }
  Param* bias() const { return bias_.get(); }

  // x: [m, in] f32 → y: [m, out] f32. cache: where a training forward keeps its activations, or null.
  void forward(const AdapterSelection& sel, int64_t m, const float* x, float* y, LinearCache* cache) const;
  // dy: [m, out] f32; x: [m, in] the forward's input; cache: that forward's. dx: [m, in] or null;
  // accumulate_dx adds into it. Adds into the gradients of the trainable parameters.
  void backward(const AdapterSelection& sel, int64_t m, const float* dy, const float* x, const LinearCache& cache,
                float* dx, bool accumulate_dx) const;

  // Adapters, by name. A layer holds adapters of one kind (LoRA or IA3).
  void add_lora(const std::string& adapter, LoraWeights weights);
  void add_ia3(const std::string& adapter, Ia3Weights weights);
  // false when this layer has no such adapter. A merged adapter must be unmerged first, unless
  // keep_merged (its effect then stays in the weight).
  bool remove_adapter(const std::string& adapter, bool keep_merged = false);
  const std::map<std::string, LoraWeights>& lora() const { return lora_; }
  const std::map<std::string, Ia3Weights>& ia3() const { return ia3_; }

  // ‖W + s·B·A‖ over each output row, [out]: DoRA's weight norm (and its magnitude's initial value).
  std::vector<float> dora_norm(const LoraWeights& w) const;

  // Folds an adapter into W (and b) / takes it back out. Unmerge in the reverse order of merges.
  void merge(const std::string& adapter);
  void unmerge(const std::string& adapter);

 private:
  std::string name_;
  ParamPtr weight_, bias_;
  int64_t in_ = 0, out_ = 0;
  std::map<std::string, LoraWeights> lora_;
  std::map<std::string, Ia3Weights> ia3_;

  void lora_forward(const AdapterSelection& sel, const std::string& name, const LoraWeights& w, int64_t m,
                    const float* x, float* y, LinearCache* cache) const;
  void lora_backward(const AdapterSelection& sel, const std::string& name, const LoraWeights& w, int64_t m,
                     const float* dy, const float* x, const LinearCache::Lora& saved, float* dx) const;
};

}  // namespace peft::nn
