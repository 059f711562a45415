// A Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM) with Hugging Face parameter names:
// embeddings, per layer RMSNorm → grouped-query attention with RoPE → residual → RMSNorm →
// SwiGLU MLP → residual, a final RMSNorm and a tied or separate output head. Its linear layers are
// nn::Linear modules that PEFT adapters attach to; prompt-tuning adapters prepend learned virtual
// tokens. Forward keeps what the backward needs; backward writes the gradients of the parameters
// that train (all of them by default) and no others.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/rope.h"
#include "model/adapter_host.h"

namespace peft::model {

struct LlamaConfig {
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab = 0;
  float rms_eps = 1e-5f;
  double rope_theta = 10000;
  std::vector<float> rope_freq_scale;  // [head_dim / 2] per-frequency factors (rope_scaling), empty = none
  bool tie_embeddings = false;
  bool attention_bias = false;
};


class LlamaModel : public AdapterHost {
 public:
  // weights: Hugging Face names → tensors (f32; bf16 for the linear layers' weights). Every expected
  // tensor must be there with the right shape: E_CONFIG names the tensor and both shapes.
  // quantized: 4-bit weights by name, for the linear layers of the blocks (q/k/v/o, gate/up/down);
  // a name given here needs no entry in `weights`. They stay frozen (QLoRA's base).
  LlamaModel(LlamaConfig config, TensorMap weights, nn::QuantWeightMap quantized = {});
  ~LlamaModel();  // defined where LayerCache is complete

  const LlamaConfig& config() const { return config_; }
  std::vector<std::string> parameter_names() const override;

  // ids: [B, T] i32 in [0, vocab); key_valid: [B, T] u8 (1 = token, 0 = padding) or null.
  // Returns logits [B, P + T, vocab] (P = prompt_length()). Keeps activations for backward() when `train`.
  Tensor forward(const Tensor& ids, const Tensor* key_valid, bool train) override;

  // Incremental decoding with a KV cache, for one sequence: reset_cache(max_len) empties it;
  // step(ids [1, T]) runs the new tokens at positions cache_len .. cache_len + T - 1 (after the
  // virtual tokens on the first step), appends their keys and values, and returns the logits of the
  // last one, [1, vocab].
  void reset_cache(int64_t max_len) override;
  Tensor step(const Tensor& ids) override;
  int64_t cache_length() const { return cache_len_; }
  // Activation checkpointing: a training forward keeps only each layer's input and the backward
  // recomputes the layer (same dropout masks), trading one more forward for the activations' memory.
  void set_checkpointing(bool on) override { checkpointing_ = on; }

  // Mean cross-entropy of the next-token predictions (logits at t against labels at t + 1, labels
  // of -100 ignored; labels: [B, P + T] i32) for the logits of the last forward(train = true); adds
  // the gradient of every trainable parameter into its grad (zeroed first unless `accumulate`).
  // Returns the loss.
  double loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) override;
  // forward(train = true) then loss_backward, without the [B, P + T, vocab] logits: the head and the
  // cross-entropy run a block of rows at a time (unless the head has adapters). Same loss and gradients.
  double train_loss(const Tensor& ids, const Tensor* key_valid, const Tensor& labels, bool accumulate) override;

 private:
  struct LayerCache;
  // What one forward pass's layers share.
  struct Step {
    nn::AdapterSelection sel;
    int64_t B = 0, T = 0, V = 0, start = 0;
    bool use_cache = false, train = false;
    std::shared_ptr<Tensor> positions, valid;  // [B, T] i32; [B, V + T] u8 or null
    nn::ParamPtr prefix;
    kernels::AttentionShape as;
    kernels::AttentionMask mask;
    kernels::RopeShape q_shape, k_shape;
    float scale = 1;
  };
  // One decoder layer: x [B · T, hidden] → the next layer's input; fills lc (kept when s.train).
  std::shared_ptr<Tensor> layer_forward(int64_t layer, const Step& s, std::shared_ptr<Tensor> x, LayerCache& lc) const;

  LlamaConfig config_;
  bool checkpointing_ = false;
  Step train_step_;
  std::vector<double> inv_freq_;
  // Activations of the last training forward.
  std::vector<LayerCache> cache_;
  nn::AdapterSelection train_selection_;
  std::shared_ptr<Tensor> ids_, key_valid_, positions_, final_input_, final_rstd_, final_normed_;
  nn::LinearCache head_cache_;
  nn::ParamPtr train_prompt_;  // the virtual tokens of the last training forward, or null
  nn::ParamPtr train_prefix_;  // the virtual keys / values of the last training forward, or null
  int64_t batch_ = 0, seq_ = 0, prompt_len_ = 0;
  // KV cache: per layer [max_len, kv_heads, head_dim] keys and values (after RoPE).
  std::vector<std::shared_ptr<Tensor>> k_cache_, v_cache_;
  int64_t cache_len_ = 0, cache_max_ = 0, cache_prefix_ = 0;

  // with_logits = false: a training forward that stops at the final norm (train_loss runs the head).
  Tensor run(const Tensor& ids, const Tensor* key_valid, bool train, bool use_cache, bool with_logits = true);
  // Zeroes the gradients (unless accumulate); returns the depth of the lowest trainable parameter.
  int begin_backward(bool accumulate);
  void check_labels(const Tensor& labels) const;
  // The backward from d(final normed) [M, hidden] (null when nothing below the head trains) down to
  // the embeddings, stopping below the lowest trainable parameter.
  void backward_trunk(const std::shared_ptr<Tensor>& d_normed, int lowest);
};

}  // namespace peft::model
