// A linear layer y = x·Wᵀ + b (W [out, in], f32 or bf16; b [out] f32 or none) that PEFT adapters
// attach to: LoRA (and DoRA) branches and IA3 scaling vectors, several per layer, applied by name
// according to an AdapterSelection. Forward keeps only what the backward needs; backward writes
// the gradients of the parameters that train and nothing else.
// W may also be a frozen 4-bit weight (QLoRA; the Param's `quant`, nn/quant_weight.h): its products
// dequantize it a panel of rows at a time (kernels/nf4.h), and the adapters work on top unchanged.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/adapter_selection.h"
#include "nn/param.h"
#include "nn/quant_weight.h"
#include "kernels/backend.h"

namespace peft::nn {

struct LoraWeights {
  ParamPtr a;          // lora_A [r, in] f32
  ParamPtr b;          // lora_B [out, r] f32
  ParamPtr magnitude;  // DoRA's magnitude vector [out] f32, or null for plain LoRA
  float scaling = 1;   // lora_alpha / r (or / sqrt(r) with rsLoRA)
  float dropout = 0;   // probability in [0, 1)
  bool merged = false;
  std::vector<float> merged_norm;  // DoRA: ‖W + s·B·A‖ per row at merge time, for unmerge
  QuantWeightPtr quant_before_merge;  // the 4-bit weight a dense merge replaced, restored on unmerge
};

struct Ia3Weights {
  ParamPtr scale;  // [in] for a feed-forward layer (scales the input), else [out] (scales the output)
  bool feedforward = false;
  bool merged = false;
  QuantWeightPtr quant_before_merge;  // the 4-bit weight a dense merge replaced, restored on unmerge
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
  // weight: [out, in] f32 or bf16, or a 4-bit weight (weight->quant set, frozen); bias: [out] f32, or null.
  Linear(std::string name, ParamPtr weight, ParamPtr bias);

  const std::string& name() const { return name_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  Param& weight() const { return *weight_; }
  Param* bias() const { return bias_.get(); }
  // The 4-bit weight, or null when W is dense.
  const QuantWeight* quant() const { return weight_->quant.get(); }

  // x: [m, in] f32 → y: [m, out] f32. cache: where a training forward keeps its activations, or null.
  void forward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* x, float* y, LinearCache* cache) const;
  // dy: [m, out] f32; x: [m, in] the forward's input; cache: that forward's. dx: [m, in] or null;
  // accumulate_dx adds into it. Adds into the gradients of the trainable parameters.
  void backward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* dy, const float* x, const LinearCache& cache,
                float* dx, bool accumulate_dx) const;

  // The same for a layer without adapters and a dense W, with y / dy at row stride ldy >= out. A padded
  // stride keeps the rows of a GEMM tile out of one cache set where out·4 bytes is a multiple of
  // 4 KiB (an output head over 49,152 words): such a stride costs the head's products 10-15%.
  void forward_strided(const kernels::Context& ctx, int64_t m, const float* x, float* y, int64_t ldy) const;
  void backward_strided(const kernels::Context& ctx, int64_t m, const float* dy, int64_t ldy, const float* x, float* dx, bool accumulate_dx) const;

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
  // A 4-bit W is dequantized for the sum, then requantized (`requantize`, as PEFT does: rounding
  // changes it slightly, and so does unmerging) or kept dense in its compute dtype (the 4-bit
  // weight is kept aside and unmerging restores it exactly). Dense weights ignore `requantize`.
  void merge(const std::string& adapter, bool requantize = true);
  void unmerge(const std::string& adapter);

 private:
  std::string name_;
  ParamPtr weight_, bias_;
  int64_t in_ = 0, out_ = 0;
  std::map<std::string, LoraWeights> lora_;
  std::map<std::string, Ia3Weights> ia3_;

  // The base products: y[m, out] = x[m, in]·Wᵀ and dx[m, in] = dy[m, out]·W (+ the output when
  // accumulate), for a dense or a 4-bit W (linear_base.cpp).
  // ldy: the row stride of y / dy (a 4-bit W takes out only).
  void base_product(const kernels::Context& ctx, int64_t m, const float* x, float* y, bool accumulate, int64_t ldy) const;
  void base_product_dx(const kernels::Context& ctx, int64_t m, const float* dy, float* dx, bool accumulate, int64_t ldy) const;
  // y[m, out] (row stride ldy) += b; b's gradient += Σ rows of dy; W's gradient += dyᵀ·input (each
  // only where it trains).
  void add_bias(const kernels::Context& ctx, int64_t m, float* y, int64_t ldy) const;
  void add_base_grads(const kernels::Context& ctx, int64_t m, const float* dy, int64_t ldy, const float* input) const;
  void check_strided(int64_t ldy) const;
  // W [out, in] as f32 values (a 4-bit W dequantized whole: for merging only).
  std::vector<float> weight_values() const;
  // Makes `values` [out, in] the weight (see merge): returns the 4-bit weight that a dense store
  // replaced, else null.
  QuantWeightPtr store_weight_values(const std::vector<float>& values, bool requantize);
  void restore_quant(QuantWeightPtr q);

  // DoRA's base term is x·Wᵀ on dropout(x): the layer's own product, unless dropout is on.
  static bool dora_shares_base(const AdapterSelection& sel, const LoraWeights& w) {
    return w.magnitude && !w.merged && !(sel.train && w.dropout > 0);
  }
  // plain: [m, out] x·Wᵀ (no bias) when some adapter shares it (dora_shares_base), else null.
  void lora_forward(const kernels::Context& ctx, const AdapterSelection& sel, const std::string& name, const LoraWeights& w, int64_t m,
                    const float* x, float* y, LinearCache* cache, const std::shared_ptr<Tensor>& plain) const;
  // base_dx_folded: the layer's own dx product already carried DoRA's base term (Linear::backward).
  void lora_backward(const kernels::Context& ctx, const AdapterSelection& sel, const std::string& name, const LoraWeights& w, int64_t m,
                     const float* dy, const float* x, const LinearCache::Lora& saved, float* dx,
                     bool base_dx_folded) const;
};

}  // namespace peft::nn
