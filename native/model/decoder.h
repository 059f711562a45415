// A decoder-only language model built from a DecoderSpec (Llama, GPT-2, ...): token (and learned
// position) embeddings, the spec's blocks (nn::DecoderBlock), a final norm and a tied or separate
// output head. Every projection is an nn::Linear that PEFT adapters attach to (and may be a frozen
// 4-bit weight, QLoRA's base); prompt tuning prepends virtual tokens, prefix tuning virtual keys and
// values. Forward keeps what the backward needs; the backward writes the gradients of the parameters
// that train and stops below the lowest of them. Activation checkpointing and a KV cache for
// generation work the same for every spec.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/adapter_host.h"
#include "model/decoder_spec.h"
#include "model/serve_state.h"
#include "nn/decoder_block.h"

namespace peft::model {

class DecoderModel : public AdapterHost {
 public:
  // weights: Hugging Face names → tensors (f32; bf16 for the matrices). Every tensor the spec names
  // must be there with the right shape: E_CONFIG names the tensor and both shapes.
  // quantized: 4-bit weights of the blocks' projections by parameter name (then not in `weights`);
  // they stay frozen.
  DecoderModel(DecoderSpec spec, TensorMap weights, nn::QuantWeightMap quantized = {});
  ~DecoderModel() override;

  const DecoderSpec& spec() const { return spec_; }
  std::vector<std::string> parameter_names() const override;

  // ids: [B, T] i32 in [0, vocab); key_valid: [B, T] u8 (1 = token, 0 = padding) or null.
  // Returns logits [B, P + T, vocab] (P = prompt_length()). Keeps activations for the backward when `train`.
  Tensor forward(const Tensor& ids, const Tensor* key_valid, bool train) override;
  // One sequence with a KV cache: reset_cache(max_len) empties it (and preloads a prefix adapter's
  // keys and values); step(ids [1, T]) runs the new tokens and returns the last one's logits [1, vocab].
  void reset_cache(int64_t max_len) override;
  Tensor step(const Tensor& ids) override;
  // A training forward keeps only each block's input; the backward runs the block again (same dropout).
  void set_checkpointing(bool on) override { checkpointing_ = on; }
  DecoderModel* as_decoder() override { return this; }
  // Mean next-token cross-entropy of the last training forward's logits against labels [B, P + T]
  // (-100 ignored); adds every trainable parameter's gradient (zeroed first unless `accumulate`).
  double loss_backward(const Tensor& logits, const Tensor& labels, bool accumulate) override;
  // The same from ids, with the head and the cross-entropy a block of rows at a time (never the
  // whole [B, P + T, vocab] logits) unless the head has adapters.
  double train_loss(const Tensor& ids, const Tensor* key_valid, const Tensor& labels, bool accumulate) override;

  // Serving many sequences at once (decoder_serve.cpp). serve_open makes a KV cache slot for up to
  // `capacity` positions and returns its id; serve_close frees it. serve_add_adapter registers LoRA
  // factors by module name (checked against the layers) and returns an id for the segments.
  int64_t serve_open(int64_t capacity);
  void serve_close(int64_t slot);
  int64_t serve_length(int64_t slot) const;
  int64_t serve_add_adapter(nn::BatchLoraAdapter adapter);
  void serve_remove_adapter(int64_t id);
  // ids: [M] i32, the segments' new tokens one after the other (a prompt's tokens, or one token of a
  // sequence being decoded); each segment's rows attend over its slot and use its adapter. Returns the
  // logits [segments, vocab] of each segment's last token, and advances each slot.
  Tensor serve_step(const Tensor& ids, const std::vector<ServeSegment>& segments);

 private:
  DecoderSpec spec_;
  std::vector<double> inv_freq_;        // [head_dim / 2] RoPE frequencies (empty without RoPE)
  std::vector<double> inv_freq_local_;  // [head_dim / 2] of the sliding-window layers, with rope_local_theta
  std::vector<nn::DecoderBlock> blocks_;
  nn::Norm final_norm_;
  bool checkpointing_ = false;

  // The last training forward.
  nn::AttentionStep train_step_;
  std::vector<nn::BlockCache> cache_;
  std::shared_ptr<Tensor> ids_, key_valid_, positions_, final_input_, final_normed_;
  nn::NormCache final_norm_cache_;
  nn::LinearCache head_cache_;
  nn::ParamPtr train_prompt_, train_prefix_;  // the virtual tokens / keys and values it used, or null
  int64_t batch_ = 0, seq_ = 0;

  // KV cache: per layer [capacity, kv_heads, head_dim] keys (after RoPE) and values.
  std::vector<std::shared_ptr<Tensor>> k_cache_, v_cache_;
  int64_t cache_len_ = 0, cache_max_ = 0, cache_prefix_ = 0;

  ServeState serve_;
  void check_serve_step(const Tensor& ids, const std::vector<ServeSegment>& segments) const;

  void build_parameters(TensorMap& weights, const nn::QuantWeightMap& quantized);
  void build_blocks();
  std::string layer_name(int64_t layer, const std::string& part) const;
  // with_logits = false: a training forward that stops at the final norm (train_loss runs the head).
  Tensor run(const Tensor& ids, const Tensor* key_valid, bool train, bool use_cache, bool with_logits = true);
  // x: [B · T, hidden] ← the embeddings of ids (after any virtual tokens) and learned positions.
  void embed(const Tensor& ids, const nn::Param* prompt, const nn::AdapterSelection& sel, const int32_t* positions,
             int64_t B, int64_t T, float* x) const;
  // Zeroes the gradients (unless accumulate); returns the depth of the lowest trainable parameter.
  int begin_backward(bool accumulate);
  void check_labels(const Tensor& labels) const;
  // From d_normed [B · T, hidden] (the final norm's output gradient) down to the embeddings,
  // stopping below the lowest trainable parameter.
  void backward_trunk(const std::shared_ptr<Tensor>& d_normed, int lowest);
};

}  // namespace peft::model
