// GPT-2 with Hugging Face parameter names (transformer.wte, transformer.wpe, transformer.h.N.ln_1,
// attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, transformer.ln_f): learned positions,
// pre-LayerNorm blocks with a fused q/k/v projection, GELU (tanh) MLP, and the output head tied to
// the token embeddings. Conv1D weights arrive transposed to [out, in] (the facade does it), so every
// projection is an nn::Linear that PEFT adapters attach to.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/adapter_host.h"

namespace peft::model {

struct Gpt2Config {
  int64_t hidden = 0;        // n_embd
  int64_t layers = 0;        // n_layer
  int64_t heads = 0;         // n_head
  int64_t inner = 0;         // n_inner (4 · hidden by default)
  int64_t vocab = 0;
  int64_t positions = 0;     // n_positions
  float ln_eps = 1e-5f;      // layer_norm_epsilon
};

class Gpt2Model : public AdapterHost {
 public:
  // weights: Hugging Face names → tensors (Conv1D weights as [out, in]); E_CONFIG names a missing
  // tensor or a shape that disagrees with the config.
  Gpt2Model(Gpt2Config config, TensorMap weights);
  ~Gpt2Model() override;

  const Gpt2Config& config() const { return config_; }
  std::vector<std::string> parameter_names() const override;
  Tensor forward(const Tensor& ids, const Tensor* key_valid, bool train) override;
  void reset_cache(int64_t max_len) override;
  Tensor step(const Tensor& ids) override;
  double loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) override;
  // Forward, loss and backward with the head and the cross-entropy in blocks of rows (head_loss.h).
  double train_loss(const Tensor& ids, const Tensor* key_valid, const Tensor& labels, bool accumulate) override;

 private:
  struct LayerCache;
  Gpt2Config config_;
  std::vector<LayerCache> cache_;
  nn::AdapterSelection train_selection_;
  std::shared_ptr<Tensor> ids_, key_valid_, positions_, final_input_, final_mean_, final_rstd_, final_normed_;
  nn::LinearCache head_cache_;
  nn::ParamPtr train_prompt_, train_prefix_;
  int64_t batch_ = 0, seq_ = 0;
  std::vector<std::shared_ptr<Tensor>> k_cache_, v_cache_;  // per layer [max_len, heads, head_dim]
  int64_t cache_len_ = 0, cache_max_ = 0, cache_prefix_ = 0;

  // with_logits = false: a training forward that stops at the final norm (train_loss runs the head).
  Tensor run(const Tensor& ids, const Tensor* key_valid, bool train, bool use_cache, bool with_logits = true);
  // Zeroes the gradients unless accumulating; returns the depth of the lowest trainable parameter.
  int begin_backward(bool accumulate);
  void check_labels(const Tensor& labels) const;
  // From d_normed [M, H] (the gradient at ln_f's output) down through the blocks to the embeddings.
  void backward_trunk(const std::shared_ptr<Tensor>& d_normed, int lowest);
};

// Depth of a GPT-2 parameter for the backward's early stop (see param_depth.h).
int gpt2_param_depth(const std::string& name, int64_t layers);

}  // namespace peft::model
