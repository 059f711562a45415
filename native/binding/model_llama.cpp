// The native Llama model object: built from a config and named weight tensors; forward (logits) and
// loss + backward (all parameter gradients), sync and async. One call at a time per model: a second
// call while one runs is refused with E_BUSY; dispose() frees the weights at once (later calls: E_DISPOSED).
#include <napi.h>

#include "binding/args.h"
#include "binding/model_adapters.h"
#include "binding/model_quant.h"
#include "binding/model_serve.h"
#include "binding/model_state.h"
#include "binding/errors.h"
#include "binding/op_runner.h"
#include "core/host_memory.h"
#include "model/encoder.h"
#include "model/specs/bert.h"
#include "model/decoder.h"
#include "model/specs/gemma.h"
#include "model/specs/gpt2.h"
#include "model/specs/llama.h"

namespace peft::binding {

namespace {

model::LlamaConfig read_config(const Napi::Object& o) {
  auto integer = [&](const char* key) {
    return to_int(o.Get(key), std::string("config.") + key);
  };
  model::LlamaConfig c;
  c.hidden = integer("hiddenSize");
  c.intermediate = integer("intermediateSize");
  c.layers = integer("numLayers");
  c.heads = integer("numHeads");
  c.kv_heads = integer("numKvHeads");
  c.head_dim = integer("headDim");
  c.vocab = integer("vocabSize");
  c.rms_eps = static_cast<float>(to_number(o.Get("rmsNormEps"), "config.rmsNormEps"));
  c.rope_theta = to_number(o.Get("ropeTheta"), "config.ropeTheta");
  c.tie_embeddings = to_bool(o.Get("tieWordEmbeddings"), "config.tieWordEmbeddings");
  c.attention_bias = to_bool(o.Get("attentionBias"), "config.attentionBias");
  if (!o.Get("qkNorm").IsUndefined()) c.qk_norm = to_bool(o.Get("qkNorm"), "config.qkNorm");
  if (!o.Get("numExperts").IsUndefined()) c.experts = to_int(o.Get("numExperts"), "config.numExperts");
  if (!o.Get("numExpertsPerTok").IsUndefined()) c.experts_per_token = to_int(o.Get("numExpertsPerTok"), "config.numExpertsPerTok");
  if (!o.Get("fusedProjections").IsUndefined())
    c.fused_projections = to_bool(o.Get("fusedProjections"), "config.fusedProjections");
  if (!o.Get("slidingWindow").IsUndefined()) c.sliding_window = to_int(o.Get("slidingWindow"), "config.slidingWindow");
  Napi::Value scale = o.Get("ropeFreqScale");
  if (scale.IsTypedArray()) {
    Napi::Float32Array a = scale.As<Napi::Float32Array>();
    c.rope_freq_scale.assign(a.Data(), a.Data() + a.ElementLength());
  }
  return c;
}

// Gemma 2 / 3: the Llama fields plus queryPreAttnScalar, attnLogitSoftcapping, finalLogitSoftcapping,
// slidingWindow, slidingLayerFlags (Uint8Array [layers]) and ropeLocalTheta.
model::GemmaConfig read_gemma_config(const Napi::Object& o, int version) {
  auto number = [&](const char* key) {
    const Napi::Value v = o.Get(key);
    return v.IsUndefined() || v.IsNull() ? 0.0 : to_number(v, std::string("config.") + key);
  };
  model::GemmaConfig c;
  c.base = read_config(o);
  c.base.sliding_window = 0;  // per layer, below
  c.version = version;
  c.query_pre_attn_scalar = static_cast<float>(number("queryPreAttnScalar"));
  c.attn_softcap = static_cast<float>(number("attnLogitSoftcapping"));
  c.final_softcap = static_cast<float>(number("finalLogitSoftcapping"));
  c.sliding_window = static_cast<int64_t>(number("slidingWindow"));
  c.rope_local_theta = number("ropeLocalTheta");
  const Napi::Value layers = o.Get("slidingLayerFlags");
  if (layers.IsTypedArray()) {
    Napi::Uint8Array a = layers.As<Napi::Uint8Array>();
    c.sliding_layers.assign(a.Data(), a.Data() + a.ElementLength());
  }
  return c;
}

model::Gpt2Config read_gpt2_config(const Napi::Object& o) {
  auto integer = [&](const char* key) { return to_int(o.Get(key), std::string("config.") + key); };
  model::Gpt2Config c;
  c.hidden = integer("hiddenSize");
  c.layers = integer("numLayers");
  c.heads = integer("numHeads");
  c.inner = integer("intermediateSize");
  c.vocab = integer("vocabSize");
  c.positions = integer("maxPositionEmbeddings");
  c.ln_eps = static_cast<float>(to_number(o.Get("layerNormEps"), "config.layerNormEps"));
  return c;
}

model::BertConfig read_bert_config(const Napi::Object& o) {
  auto integer = [&](const char* key) { return to_int(o.Get(key), std::string("config.") + key); };
  model::BertConfig c;
  c.hidden = integer("hiddenSize");
  c.layers = integer("numLayers");
  c.heads = integer("numHeads");
  c.intermediate = integer("intermediateSize");
  c.vocab = integer("vocabSize");
  c.positions = integer("maxPositionEmbeddings");
  c.type_vocab = integer("typeVocabSize");
  c.num_labels = integer("numLabels");
  c.ln_eps = static_cast<float>(to_number(o.Get("layerNormEps"), "config.layerNormEps"));
  return c;
}

// The spec of a decoder config: config.architecture "gpt2", or the Llama family by config.modelType.
model::DecoderSpec decoder_spec(const Napi::Object& o) {
  const Napi::Value arch = o.Get("architecture");
  if (arch.IsString() && arch.As<Napi::String>().Utf8Value() == "gpt2") return model::gpt2_spec(read_gpt2_config(o));
  const Napi::Value type = o.Get("modelType");
  const std::string model_type = type.IsString() ? type.As<Napi::String>().Utf8Value() : "";
  if (model_type == "gemma2") return model::gemma_spec(read_gemma_config(o, 2));
  if (model_type == "gemma3_text") return model::gemma_spec(read_gemma_config(o, 3));
  return model::llama_spec(read_config(o));
}

// forward(ids [B, T] i32, mask [B, T] u8 | null, train) -> logits [B, T, vocab]
class ForwardPlan : public OpPlan {
 public:
  ForwardPlan(std::shared_ptr<ModelState> state, const Napi::CallbackInfo& info) : lease_(std::move(state)) {
    ids_ = reads(to_tensor(arg(info, 0), "ids"));
    mask_ = to_tensor_or_null(arg(info, 1), "mask");
    reads(mask_);
    train_ = to_bool(arg(info, 2), "train");
  }
  void execute() override {
    logits_ = std::make_shared<Tensor>(lease_.model().forward(*ids_, mask_.get(), train_));
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, logits_); }

 private:
  ModelLease lease_;
  std::shared_ptr<Tensor> ids_, mask_, logits_;
  bool train_;
};

// step(ids [1, T] i32) -> logits [1, vocab] of the last new token (KV cache, see DecoderModel::step)
class StepPlan : public OpPlan {
 public:
  StepPlan(std::shared_ptr<ModelState> state, const Napi::CallbackInfo& info) : lease_(std::move(state)) {
    ids_ = reads(to_tensor(arg(info, 0), "ids"));
  }
  void execute() override { logits_ = std::make_shared<Tensor>(lease_.model().step(*ids_)); }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, logits_); }

 private:
  ModelLease lease_;
  std::shared_ptr<Tensor> ids_, logits_;
};

// { loss, grads: { name: Tensor } }: the gradients of the trainable parameters (the model's own
// buffers, rewritten by the next backward).
Napi::Object loss_result(Napi::Env env, model::AdapterHost& model, double loss) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", Napi::Number::New(env, loss));
  Napi::Object grads = Napi::Object::New(env);
  for (const auto& [name, p] : model.parameters())
    if (p->trainable && p->grad) grads.Set(name, wrap_tensor(env, p->grad));
  out.Set("grads", grads);
  return out;
}

// lossBackward(logits, labels [B, P + T] i32, accumulate) -> { loss, grads: { name: Tensor } } with the
// gradients of the trainable parameters (the model's own buffers, rewritten by the next backward).
class LossBackwardPlan : public OpPlan {
 public:
  LossBackwardPlan(std::shared_ptr<ModelState> state, const Napi::CallbackInfo& info) : lease_(std::move(state)) {
    logits_ = reads(to_tensor(arg(info, 0), "logits"));
    labels_ = reads(to_tensor(arg(info, 1), "labels"));
    const Napi::Value acc = info.Length() > 2 ? info[2] : info.Env().Undefined();
    accumulate_ = !acc.IsUndefined() && to_bool(acc, "accumulate");
  }
  void execute() override { loss_ = lease_.model().loss_backward(*logits_, *labels_, accumulate_); }
  Napi::Value result(Napi::Env env) override { return loss_result(env, lease_.model(), loss_); }

 private:
  ModelLease lease_;
  std::shared_ptr<Tensor> logits_, labels_;
  bool accumulate_ = false;
  double loss_ = 0;
};

// trainLoss(ids [B, T] i32, mask [B, T] u8 | null, labels [B, P + T] i32, accumulate) -> { loss, grads }:
// the training forward and lossBackward in one call, without handing the logits to JavaScript (the
// model may never hold them whole: see AdapterHost::train_loss).
class TrainLossPlan : public OpPlan {
 public:
  TrainLossPlan(std::shared_ptr<ModelState> state, const Napi::CallbackInfo& info) : lease_(std::move(state)) {
    ids_ = reads(to_tensor(arg(info, 0), "ids"));
    mask_ = to_tensor_or_null(arg(info, 1), "mask");
    reads(mask_);
    labels_ = reads(to_tensor(arg(info, 2), "labels"));
    const Napi::Value acc = info.Length() > 3 ? info[3] : info.Env().Undefined();
    accumulate_ = !acc.IsUndefined() && to_bool(acc, "accumulate");
  }
  void execute() override { loss_ = lease_.model().train_loss(*ids_, mask_.get(), *labels_, accumulate_); }
  Napi::Value result(Napi::Env env) override { return loss_result(env, lease_.model(), loss_); }

 private:
  ModelLease lease_;
  std::shared_ptr<Tensor> ids_, mask_, labels_;
  bool accumulate_ = false;
  double loss_ = 0;
};

// new NativeLlama(config, names: string[], tensors: NativeTensor[], quantized?: { name: 4-bit weight })
// (4-bit weights: see model_quant.h)
class LlamaWrap : public Napi::ObjectWrap<LlamaWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeLlama",
                       {InstanceMethod<&LlamaWrap::forward>("forward"),
                        InstanceMethod<&LlamaWrap::forward_async>("forwardAsync"),
                        InstanceMethod<&LlamaWrap::loss_backward>("lossBackward"),
                        InstanceMethod<&LlamaWrap::loss_backward_async>("lossBackwardAsync"),
                        InstanceMethod<&LlamaWrap::train_loss>("trainLoss"),
                        InstanceMethod<&LlamaWrap::train_loss_async>("trainLossAsync"),
                        InstanceMethod<&LlamaWrap::reset_cache>("resetCache"),
                        InstanceMethod<&LlamaWrap::step>("step"),
                        InstanceMethod<&LlamaWrap::step_async>("stepAsync"),
                        InstanceMethod<&LlamaWrap::parameter_names>("parameterNames"),
                        InstanceMethod<&LlamaWrap::promptLength>("promptLength"),
                        InstanceMethod<&LlamaWrap::leased<add_lora>>("addLora"),
                        InstanceMethod<&LlamaWrap::leased<add_ia3>>("addIa3"),
                        InstanceMethod<&LlamaWrap::leased<add_embedding_lora>>("addEmbeddingLora"),
                        InstanceMethod<&LlamaWrap::leased<add_prompt>>("addPrompt"),
                        InstanceMethod<&LlamaWrap::leased<add_prefix>>("addPrefix"),
                        InstanceMethod<&LlamaWrap::leased<prefix_length>>("prefixLength"),
                        InstanceMethod<&LlamaWrap::leased<add_bottleneck>>("addBottleneck"),
                        InstanceMethod<&LlamaWrap::leased<delete_adapter>>("deleteAdapter"),
                        InstanceMethod<&LlamaWrap::leased<set_selection>>("setSelection"),
                        InstanceMethod<&LlamaWrap::leased<set_trainable>>("setTrainable"),
                        InstanceMethod<&LlamaWrap::leased<parameters>>("parameters"),
                        InstanceMethod<&LlamaWrap::leased<set_parameter_value>>("setParameterValue"),
                        InstanceMethod<&LlamaWrap::leased<grads>>("grads"),
                        InstanceMethod<&LlamaWrap::leased<linear_modules>>("linearModules"),
                        InstanceMethod<&LlamaWrap::leased<set_checkpointing>>("setCheckpointing"),
                        InstanceMethod<&LlamaWrap::leased<quantized_weights>>("quantizedWeights"),
                        InstanceMethod<&LlamaWrap::leased<merge>>("mergeAdapter"),
                        InstanceMethod<&LlamaWrap::leased<unmerge>>("unmergeAdapter"),
                        InstanceMethod<&LlamaWrap::served<serve_open>>("serveOpen"),
                        InstanceMethod<&LlamaWrap::served<serve_close>>("serveClose"),
                        InstanceMethod<&LlamaWrap::served<serve_length>>("serveLength"),
                        InstanceMethod<&LlamaWrap::served<serve_add_adapter>>("serveAddAdapter"),
                        InstanceMethod<&LlamaWrap::served<serve_remove_adapter>>("serveRemoveAdapter"),
                        InstanceMethod<&LlamaWrap::served<serve_step_async>>("serveStepAsync"),
                        InstanceMethod<&LlamaWrap::dispose>("dispose")});
  }

  explicit LlamaWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LlamaWrap>(info) {
    guarded(info, [&] {
      Napi::Object config_object = to_object(arg(info, 0), "config");
      const Napi::Value arch = config_object.Get("architecture");
      const std::string architecture = arch.IsString() ? arch.As<Napi::String>().Utf8Value() : "llama";
      Napi::Value names_value = arg(info, 1);
      if (!names_value.IsArray()) fail_argument("Expected an array of tensor names for names but received " + describe(names_value));
      Napi::Array names = names_value.As<Napi::Array>();
      auto tensors = to_tensor_list(arg(info, 2), "tensors");
      PEFT_CHECK(names.Length() == tensors.size(), ErrorCode::Argument, "Expected one name per weight tensor");
      model::TensorMap weights;
      for (uint32_t i = 0; i < names.Length(); ++i) weights[to_string(names.Get(i), "names[" + std::to_string(i) + "]")] = tensors[i];
      nn::QuantWeightMap quantized = to_quant_weights(arg(info, 3), "quantized");
      state_ = std::make_shared<ModelState>();
      PEFT_CHECK(quantized.empty() || architecture != "bert", ErrorCode::Unsupported,
                 "4-bit weights are available for the decoder architectures only");
      if (architecture == "bert")
        state_->model = std::make_unique<model::EncoderModel>(model::bert_spec(read_bert_config(config_object)), std::move(weights));
      else
        state_->model = std::make_unique<model::DecoderModel>(decoder_spec(config_object), std::move(weights),
                                                              std::move(quantized));
      return info.Env().Undefined();
    });
  }

 private:
  Napi::Value forward(const Napi::CallbackInfo& info) {
    return guarded(info, [&] { return run_sync(info.Env(), std::make_unique<ForwardPlan>(state_, info)); });
  }
  Napi::Value forward_async(const Napi::CallbackInfo& info) {
    return guarded(info, [&] { return run_async(info.Env(), std::make_unique<ForwardPlan>(state_, info)); });
  }
  Napi::Value loss_backward(const Napi::CallbackInfo& info) {
    return guarded(info, [&] { return run_sync(info.Env(), std::make_unique<LossBackwardPlan>(state_, info)); });
  }
  Napi::Value loss_backward_async(const Napi::CallbackInfo& info) {
    return guarded(info, [&] { return run_async(info.Env(), std::make_unique<LossBackwardPlan>(state_, info)); });
  }
  Napi::Value train_loss(const Napi::CallbackInfo& info) {
    return guarded(info, [&] { return run_sync(info.Env(), std::make_unique<TrainLossPlan>(state_, info)); });
  }
  Napi::Value train_loss_async(const Napi::CallbackInfo& info) {
    return guarded(info, [&] { return run_async(info.Env(), std::make_unique<TrainLossPlan>(state_, info)); });
  }
  Napi::Value reset_cache(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      ModelLease lease(state_);
      lease.model().reset_cache(to_int(arg(info, 0), "maxLength"));
      return info.Env().Undefined();
    });
  }
  Napi::Value step(const Napi::CallbackInfo& info) {
    return guarded(info, [&] { return run_sync(info.Env(), std::make_unique<StepPlan>(state_, info)); });
  }
  Napi::Value step_async(const Napi::CallbackInfo& info) {
    return guarded(info, [&] { return run_async(info.Env(), std::make_unique<StepPlan>(state_, info)); });
  }
  Napi::Value parameter_names(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      ModelLease lease(state_);
      auto names = lease.model().parameter_names();
      Napi::Array out = Napi::Array::New(info.Env(), names.size());
      for (size_t i = 0; i < names.size(); ++i) out.Set(static_cast<uint32_t>(i), names[i]);
      return out;
    });
  }

  Napi::Value promptLength(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      ModelLease lease(state_);
      return Napi::Number::New(info.Env(), static_cast<double>(lease.model().prompt_length()));
    });
  }
  // Frees the model's native memory now (its own buffers, and its references to the weight tensors).
  // E_BUSY while a call runs; a second dispose does nothing.
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      if (!state_->model) return info.Env().Undefined();
      std::unique_ptr<model::AdapterHost> freed;
      {
        ModelLease lease(state_);
        freed = std::move(state_->model);
      }
      freed.reset();  // outside the lease
      host_release_cached();
      return info.Env().Undefined();
    });
  }
  // A synchronous call that needs the model to itself.
  template <Napi::Value (*Fn)(model::AdapterHost&, const Napi::CallbackInfo&)>
  Napi::Value leased(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      ModelLease lease(state_);
      return Fn(lease.model(), info);
    });
  }
  // A serving call (model_serve.h): it takes its own lease.
  template <Napi::Value (*Fn)(const std::shared_ptr<ModelState>&, const Napi::CallbackInfo&)>
  Napi::Value served(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value { return Fn(state_, info); });
  }
  static Napi::Value merge(model::AdapterHost& m, const Napi::CallbackInfo& info) { return merge_adapter(m, info, true); }
  static Napi::Value unmerge(model::AdapterHost& m, const Napi::CallbackInfo& info) { return merge_adapter(m, info, false); }

  std::shared_ptr<ModelState> state_;
};

}  // namespace

void register_llama(Napi::Env env, Napi::Object exports) { exports.Set("NativeLlama", LlamaWrap::define(env)); }

}  // namespace peft::binding
