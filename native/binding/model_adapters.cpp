#include "binding/model_adapters.h"

#include "binding/args.h"
#include "core/error.h"

namespace peft::binding {

namespace {

nn::ParamPtr trainable_param(std::shared_ptr<Tensor> t) {
  if (!t) return nullptr;
  auto p = std::make_shared<nn::Param>("", std::move(t));
  p->trainable = true;
  return p;
}

std::vector<std::string> to_string_list(const Napi::Value& v, const std::string& what) {
  PEFT_CHECK(v.IsArray(), ErrorCode::Argument, "Expected an array of strings for " + what + " but received " + describe(v));
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(to_string(a.Get(i), what + "[" + std::to_string(i) + "]"));
  return out;
}

}  // namespace

Napi::Value add_lora(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  const std::string module = to_string(arg(info, 0), "module");
  const std::string adapter = to_string(arg(info, 1), "adapter");
  nn::LoraWeights w;
  Napi::Object o = to_object(arg(info, 5), "options");
  // shareA: another module whose A (of the same adapter) this one uses too, as one parameter:
  // PEFT's LoRA on a fused expert gate_up_proj applies one A to both the gate and the up rows.
  const Napi::Value share = o.Get("shareA");
  if (share.IsUndefined() || share.IsNull()) {
    w.a = trainable_param(to_tensor(arg(info, 2), "A"));
  } else {
    const std::string owner = to_string(share, "options.shareA");
    const auto& owned = m.linear(owner).lora();
    auto it = owned.find(adapter);
    PEFT_CHECK(it != owned.end(), ErrorCode::Argument,
               "Cannot share lora_A with " + owner + ": it has no LoRA adapter named " + adapter);
    w.a = it->second.a;
  }
  w.b = trainable_param(to_tensor(arg(info, 3), "B"));
  auto magnitude = to_tensor_or_null(arg(info, 4), "magnitude");
  w.scaling = static_cast<float>(option_number(o, "scaling", 1.0));
  w.dropout = static_cast<float>(option_number(o, "dropout", 0.0));
  if (option_bool(o, "useDora", false) && !magnitude) {
    // DoRA starts with magnitude = ‖W + s·B·A‖, so the adapted layer begins equal to the base one.
    const nn::Linear& lin = m.linear(module);
    PEFT_CHECK(w.a && w.b, ErrorCode::Argument, "DoRA needs A and B");
    std::vector<float> norm = lin.dora_norm(w);
    magnitude = std::make_shared<Tensor>(DType::F32, Shape{lin.out_features()});
    std::copy(norm.begin(), norm.end(), magnitude->data_as<float>());
  }
  w.magnitude = trainable_param(magnitude);
  m.add_lora(module, adapter, std::move(w));
  return info.Env().Undefined();
}

Napi::Value add_embedding_lora(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  const std::string adapter = to_string(arg(info, 0), "adapter");
  nn::EmbeddingLora w;
  w.a = trainable_param(to_tensor(arg(info, 1), "A"));
  w.b = trainable_param(to_tensor(arg(info, 2), "B"));
  w.scaling = static_cast<float>(to_number(arg(info, 3), "scaling"));
  m.add_embedding_lora(adapter, std::move(w));
  return info.Env().Undefined();
}

Napi::Value add_ia3(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  const std::string module = to_string(arg(info, 0), "module");
  const std::string adapter = to_string(arg(info, 1), "adapter");
  nn::Ia3Weights w;
  w.scale = trainable_param(to_tensor(arg(info, 2), "vector"));
  w.feedforward = to_bool(arg(info, 3), "feedforward");
  m.add_ia3(module, adapter, std::move(w));
  return info.Env().Undefined();
}

Napi::Value add_bottleneck(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  const int64_t layer = to_int(arg(info, 0), "layer");
  const std::string site = to_string(arg(info, 1), "site");
  const std::string adapter = to_string(arg(info, 2), "adapter");
  nn::BottleneckWeights w;
  w.down_w = trainable_param(to_tensor(arg(info, 3), "downWeight"));
  w.down_b = trainable_param(to_tensor(arg(info, 4), "downBias"));
  w.up_w = trainable_param(to_tensor(arg(info, 5), "upWeight"));
  w.up_b = trainable_param(to_tensor(arg(info, 6), "upBias"));
  Napi::Object o = to_object(arg(info, 7), "options");
  w.act = nn::parse_activation(to_string(o.Get("nonLinearity"), "options.nonLinearity"));
  w.scaling = static_cast<float>(option_number(o, "scaling", 1.0));
  w.parallel = option_bool(o, "parallel", false);
  m.add_bottleneck(layer, site, adapter, std::move(w));
  return info.Env().Undefined();
}

Napi::Value add_prefix(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  m.add_prefix(to_string(arg(info, 0), "adapter"), to_tensor(arg(info, 1), "kv"));
  return info.Env().Undefined();
}

Napi::Value prefix_length(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(m.prefix_length()));
}

Napi::Value add_prompt(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  m.add_prompt(to_string(arg(info, 0), "adapter"), to_tensor(arg(info, 1), "embeddings"));
  return info.Env().Undefined();
}

Napi::Value delete_adapter(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  const bool keep_merged = info.Length() > 1 && !info[1].IsUndefined() && to_bool(info[1], "keepMerged");
  m.delete_adapter(to_string(arg(info, 0), "adapter"), keep_merged);
  return info.Env().Undefined();
}

Napi::Value set_selection(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  Napi::Object o = to_object(arg(info, 0), "selection");
  nn::AdapterSelection sel;
  sel.enabled = option_bool(o, "enabled", true);
  if (o.Has("active") && !o.Get("active").IsUndefined()) sel.active = to_string_list(o.Get("active"), "selection.active");
  Napi::Value rows = o.Get("perRow");
  if (!rows.IsUndefined() && !rows.IsNull()) sel.per_row = to_string_list(rows, "selection.perRow");
  const double seed = option_number(o, "seed", 0);
  PEFT_CHECK(seed >= 0 && seed <= 9007199254740991.0, ErrorCode::Range, "Expected a seed in [0, 2^53) for selection.seed");
  sel.seed = static_cast<uint64_t>(seed);
  sel.dropout = option_bool(o, "dropout", true);
  m.set_selection(std::move(sel));
  return info.Env().Undefined();
}

Napi::Value set_trainable(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  nn::Param& p = m.parameter(to_string(arg(info, 0), "name"));
  const bool trainable = to_bool(arg(info, 1), "trainable");
  PEFT_CHECK(!trainable || !p.quant, ErrorCode::DType,
             "Cannot train " + p.name + ": it is a 4-bit weight, and 4-bit weights are frozen (train adapters on it instead)");
  PEFT_CHECK(!trainable || p.value->dtype() == DType::F32, ErrorCode::DType,
             "Expected an f32 parameter to train but " + p.name + " is " + dtype_name(p.value->dtype()));
  p.trainable = trainable;
  if (!trainable) p.grad.reset();  // frozen parameters hold no gradient memory
  return info.Env().Undefined();
}

Napi::Value set_parameter_value(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  nn::Param& p = m.parameter(to_string(arg(info, 0), "name"));
  PEFT_CHECK(!p.quant, ErrorCode::DType, "Cannot replace " + p.name + ": it is a 4-bit weight, which stays frozen");
  auto value = to_tensor(arg(info, 1), "value");
  PEFT_CHECK(value->shape() == p.value->shape() && value->dtype() == p.value->dtype() && value->is_contiguous(),
             ErrorCode::Shape,
             "Expected a contiguous " + std::string(dtype_name(p.value->dtype())) + " " + shape_to_string(p.value->shape()) +
                 " tensor for " + p.name + " but received " + dtype_name(value->dtype()) + " " +
                 shape_to_string(value->shape()));
  p.value = std::move(value);
  p.grad.reset();
  return info.Env().Undefined();
}

Napi::Value parameters(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  for (const auto& [name, p] : m.parameters()) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", name);
    entry.Set("tensor", wrap_tensor(env, p->value));
    entry.Set("trainable", p->trainable);
    if (p->quant) {  // the tensor is the packed codes: say what it stands for
      entry.Set("quantized", true);
      entry.Set("numel", Napi::Number::New(env, static_cast<double>(p->quant->numel())));
    }
    out.Set(i++, entry);
  }
  return out;
}

Napi::Value grads(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [name, p] : m.parameters())
    if (p->trainable && p->grad) out.Set(name, wrap_tensor(env, p->grad));
  return out;
}

Napi::Value linear_modules(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  for (const auto& [name, lin] : m.linears()) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", name);
    entry.Set("inFeatures", Napi::Number::New(env, static_cast<double>(lin->in_features())));
    entry.Set("outFeatures", Napi::Number::New(env, static_cast<double>(lin->out_features())));
    entry.Set("bias", lin->bias() != nullptr);
    entry.Set("quantized", lin->quant() != nullptr);
    out.Set(i++, entry);
  }
  return out;
}

Napi::Value merge_adapter(model::AdapterHost& m, const Napi::CallbackInfo& info, bool merge) {
  const std::string adapter = to_string(arg(info, 0), "adapter");
  const Napi::Value opts = arg(info, 1);
  const bool requantize = opts.IsUndefined() || option_bool(to_object(opts, "options"), "requantize", true);
  int layers = m.merge_embedding_lora(adapter, merge) ? 1 : 0;
  for (const auto& [name, lin] : m.linears()) {
    if (!lin->lora().count(adapter) && !lin->ia3().count(adapter)) continue;
    merge ? lin->merge(adapter, requantize) : lin->unmerge(adapter);
    ++layers;
  }
  PEFT_CHECK(layers > 0, ErrorCode::Argument, "No layer holds a LoRA or IA3 adapter named " + adapter);
  return Napi::Number::New(info.Env(), layers);
}

}  // namespace peft::binding

namespace peft::binding {

Napi::Value set_checkpointing(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  m.set_checkpointing(to_bool(arg(info, 0), "on"));
  return info.Env().Undefined();
}

}  // namespace peft::binding
