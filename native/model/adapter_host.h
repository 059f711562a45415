// What every model architecture shares: its parameters by name, the linear layers PEFT adapters
// attach to, and the adapters that live outside linear layers (virtual tokens, prefix keys and
// values, LoRA on the embeddings, bottleneck adapters after each layer's attention and MLP), plus
// which adapters the next forward applies. A model (DecoderModel, EncoderModel) derives
// from it and implements the forward, the backward and the KV-cache steps.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/backend.h"
#include "nn/adapter_selection.h"
#include "nn/bottleneck.h"
#include "nn/embedding_lora.h"
#include "nn/linear.h"
#include "nn/param.h"

namespace peft::model {

using TensorMap = std::map<std::string, std::shared_ptr<Tensor>>;

// The sizes and names adapters are checked against.
struct HostDims {
  int64_t hidden = 0;
  int64_t vocab = 0;
  int64_t layers = 0;
  int64_t kv_dim = 0;           // kv heads · head dim: the width of one layer's prefix keys
  bool tied_head = false;       // the output head reads the embedding table
  std::string embed_module;     // e.g. model.embed_tokens
  std::string layer_prefix;     // e.g. "model.layers." (+ index)
};

class DecoderModel;

class AdapterHost {
 public:
  virtual ~AdapterHost();

  // --- the architecture ---
  // The base model's parameter names, in a fixed order.
  virtual std::vector<std::string> parameter_names() const = 0;
  // ids: [B, T] i32 in [0, vocab); key_valid: [B, T] u8 (1 = token, 0 = padding) or null.
  // Returns logits [B, P + T, vocab] (P = prompt_length()). Keeps activations for the backward when `train`.
  virtual Tensor forward(const Tensor& ids, const Tensor* key_valid, bool train) = 0;
  // Incremental decoding with a KV cache, for one sequence: reset_cache(max_len) empties it (and
  // preloads a prefix adapter's keys and values); step(ids [1, T]) runs the new tokens and returns
  // the logits of the last one, [1, vocab].
  virtual void reset_cache(int64_t max_len) = 0;
  virtual Tensor step(const Tensor& ids) = 0;
  // Mean next-token cross-entropy of the last training forward's logits against labels [B, P + T]
  // (-100 ignored); adds the gradient of every trainable parameter into its grad (zeroed first
  // unless `accumulate`). Returns the loss.
  virtual double loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) = 0;
  // forward(ids, key_valid, train = true) then loss_backward in one call; an architecture may do it
  // without the whole logits (the Llama family runs the head and the loss in row blocks).
  virtual double train_loss(const Tensor& ids, const Tensor* key_valid, const Tensor& labels, bool accumulate);
  // Activation checkpointing (recompute each layer in the backward instead of keeping its
  // activations). Architectures without it refuse with E_UNSUPPORTED.
  virtual void set_checkpointing(bool on);
  // The decoder behind this host (serving calls need one), or null for another architecture.
  virtual DecoderModel* as_decoder() { return nullptr; }

  // --- where it runs ---
  // The backend every op of this model runs on (kernels/backend.h): the CPU's unless set. Tensors
  // handed to the model must be in that backend's memory.
  const kernels::Context& context() const { return ctx_; }
  void set_backend(const kernels::Backend& backend) { ctx_ = kernels::Context{&backend}; }

  // --- parameters and modules ---
  const HostDims& dims() const { return dims_; }
  // Every parameter, base and adapter, by name.
  const std::map<std::string, nn::ParamPtr>& parameters() const { return params_; }
  nn::Param& parameter(const std::string& name) const;
  // The linear layers PEFT can target, by module name.
  const std::map<std::string, std::unique_ptr<nn::Linear>>& linears() const { return linears_; }
  nn::Linear& linear(const std::string& module) const;

  // --- adapters: their parameters are registered under PEFT's module names and train ---
  void add_lora(const std::string& module, const std::string& adapter, nn::LoraWeights weights);
  void add_ia3(const std::string& module, const std::string& adapter, nn::Ia3Weights weights);
  // prompt: [virtual tokens, hidden] f32, prepended to the token embeddings of every row.
  void add_prompt(const std::string& adapter, std::shared_ptr<Tensor> prompt);
  // Prefix tuning: kv [P, layers · 2 · kv_dim] f32, per virtual token the keys then the values of
  // layer 0, then of layer 1, ... (Hugging Face PEFT's past_key_values layout).
  void add_prefix(const std::string& adapter, std::shared_ptr<Tensor> kv);
  // LoRA on the token embeddings: A [r, vocab], B [hidden, r].
  void add_embedding_lora(const std::string& adapter, nn::EmbeddingLora weights);
  // Folds an embedding LoRA adapter into the table (or takes it out); false when there is none.
  bool merge_embedding_lora(const std::string& adapter, bool merge);
  // A bottleneck adapter after layer `layer`'s attention (site "attn") or MLP (site "mlp").
  void add_bottleneck(int64_t layer, const std::string& site, const std::string& adapter, nn::BottleneckWeights weights);
  // keep_merged: forget a merged adapter, leaving its effect in the weights (merge and unload).
  void delete_adapter(const std::string& adapter, bool keep_merged = false);
  void set_selection(nn::AdapterSelection selection) { selection_ = std::move(selection); }
  const nn::AdapterSelection& selection() const { return selection_; }
  // Virtual tokens / prefix keys that the current selection prepends (0 without such an adapter).
  int64_t prompt_length() const;
  int64_t prefix_length() const;

 protected:
  kernels::Context ctx_ = kernels::cpu_context();
  explicit AdapterHost(HostDims dims);
  const Tensor& weight(const std::string& name) const;
  const float* weight_f32(const std::string& name) const;
  nn::ParamPtr active_prompt() const;
  nn::ParamPtr active_prefix() const;
  // The depth (nn::Param::depth) an adapter on `module` takes: 0 unless the architecture set one.
  int module_depth(const std::string& module) const;

  HostDims dims_;
  std::map<std::string, nn::ParamPtr> params_;
  std::map<std::string, std::unique_ptr<nn::Linear>> linears_;
  std::map<std::string, nn::ParamPtr> prompts_;               // adapter → virtual token embeddings
  std::map<std::string, nn::ParamPtr> prefixes_;              // adapter → virtual keys and values
  std::map<std::string, nn::EmbeddingLora> embedding_lora_;  // adapter → LoRA on the embeddings
  std::vector<std::unique_ptr<nn::BottleneckSite>> attn_sites_, mlp_sites_;  // per layer
  nn::AdapterSelection selection_;
  // Where adapters enter the network, by module name (linear layers, "<layer>.attn_adapter" /
  // "<layer>.mlp_adapter" bottleneck sites, "prefix_kv"); set by the architecture.
  std::map<std::string, int> module_depths_;
};

}  // namespace peft::model
