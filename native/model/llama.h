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
#include "nn/adapter_selection.h"
#include "nn/bottleneck.h"
#include "nn/embedding_lora.h"
#include "nn/linear.h"
#include "nn/param.h"

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

using TensorMap = std::map<std::string, std::shared_ptr<Tensor>>;

class LlamaModel {
 public:
  // weights: Hugging Face names → tensors (f32; bf16 for the linear layers' weights). Every expected
  // tensor must be there with the right shape: E_CONFIG names the tensor and both shapes.
  LlamaModel(LlamaConfig config, TensorMap weights);
  ~LlamaModel();  // defined where LayerCache is complete

  const LlamaConfig& config() const { return config_; }
  // The base model's parameter names, in a fixed order.
  std::vector<std::string> parameter_names() const;
  // Every parameter, base and adapter, by name.
  const std::map<std::string, nn::ParamPtr>& parameters() const { return params_; }
  nn::Param& parameter(const std::string& name) const;
  // The linear layers PEFT can target, by module name (model.layers.0.self_attn.q_proj, ..., lm_head).
  const std::map<std::string, std::unique_ptr<nn::Linear>>& linears() const { return linears_; }
  nn::Linear& linear(const std::string& module) const;

  // Adapters. Their parameters are registered under PEFT's module names, e.g.
  // model.layers.0.self_attn.q_proj.lora_A.<adapter>.weight; they train.
  void add_lora(const std::string& module, const std::string& adapter, nn::LoraWeights weights);
  void add_ia3(const std::string& module, const std::string& adapter, nn::Ia3Weights weights);
  // prompt: [virtual tokens, hidden] f32, prepended to the token embeddings of every row.
  void add_prompt(const std::string& adapter, std::shared_ptr<Tensor> prompt);
  // keep_merged: forget a merged adapter, leaving its effect in the weights (merge and unload).
  // Prefix tuning: kv [P, layers · 2 · kv_heads · head_dim] f32, per virtual token the keys then the
  // values of layer 0, then of layer 1, ... (Hugging Face PEFT's past_key_values layout); they are
  // prepended to every layer's keys and values, and the tokens' positions start at P.
  void add_prefix(const std::string& adapter, std::shared_ptr<Tensor> kv);
  // Virtual keys/values that the current selection prepends (0 without an active prefix adapter).
  int64_t prefix_length() const;
  // LoRA on the token embeddings: A [r, vocab], B [hidden, r].
  void add_embedding_lora(const std::string& adapter, nn::EmbeddingLora weights);
  // Folds an embedding LoRA adapter into the table (or takes it out); false when there is none.
  bool merge_embedding_lora(const std::string& adapter, bool merge);
  // A bottleneck adapter after layer `layer`'s attention (site "attn") or MLP (site "mlp").
  void add_bottleneck(int64_t layer, const std::string& site, const std::string& adapter, nn::BottleneckWeights weights);
  void delete_adapter(const std::string& adapter, bool keep_merged = false);
  void set_selection(nn::AdapterSelection selection) { selection_ = std::move(selection); }
  const nn::AdapterSelection& selection() const { return selection_; }
  // Virtual tokens that the current selection prepends (0 without an active prompt adapter).
  int64_t prompt_length() const;

  // ids: [B, T] i32 in [0, vocab); key_valid: [B, T] u8 (1 = token, 0 = padding) or null.
  // Returns logits [B, P + T, vocab] (P = prompt_length()). Keeps activations for backward() when `train`.
  Tensor forward(const Tensor& ids, const Tensor* key_valid, bool train);

  // Incremental decoding with a KV cache, for one sequence: reset_cache(max_len) empties it;
  // step(ids [1, T]) runs the new tokens at positions cache_len .. cache_len + T - 1 (after the
  // virtual tokens on the first step), appends their keys and values, and returns the logits of the
  // last one, [1, vocab].
  void reset_cache(int64_t max_len);
  Tensor step(const Tensor& ids);
  int64_t cache_length() const { return cache_len_; }

  // Mean cross-entropy of the next-token predictions (logits at t against labels at t + 1, labels
  // of -100 ignored; labels: [B, P + T] i32) for the logits of the last forward(train = true); adds
  // the gradient of every trainable parameter into its grad (zeroed first unless `accumulate`).
  // Returns the loss.
  double loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate);

 private:
  struct LayerCache;
  const Tensor& weight(const std::string& name) const;
  const float* weight_f32(const std::string& name) const;
  nn::ParamPtr active_prompt() const;
  nn::ParamPtr active_prefix() const;

  LlamaConfig config_;
  std::map<std::string, nn::ParamPtr> params_;
  std::map<std::string, std::unique_ptr<nn::Linear>> linears_;
  std::map<std::string, nn::ParamPtr> prompts_;  // adapter → virtual token embeddings
  std::map<std::string, nn::ParamPtr> prefixes_;  // adapter → virtual keys and values
  std::map<std::string, nn::EmbeddingLora> embedding_lora_;  // adapter → LoRA on embed_tokens
  std::vector<std::unique_ptr<nn::BottleneckSite>> attn_sites_, mlp_sites_;  // per layer
  nn::AdapterSelection selection_;
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

  Tensor run(const Tensor& ids, const Tensor* key_valid, bool train, bool use_cache);
};

}  // namespace peft::model
