#include "binding/model_serve.h"

#include "binding/args.h"
#include "binding/errors.h"
#include "binding/op_runner.h"
#include "model/decoder.h"

namespace peft::binding {

namespace {

model::DecoderModel& decoder(const ModelLease& lease) {
  model::DecoderModel* d = lease.model().as_decoder();
  PEFT_CHECK(d != nullptr, ErrorCode::Unsupported, "Only decoder (text generation) models serve batched generation");
  return *d;
}

// segments: a flat array [slot, rows, adapter, slot, rows, adapter, ...] of integers.
std::vector<model::ServeSegment> to_segments(const Napi::Value& v) {
  if (!v.IsArray()) fail_argument("Expected an array of [slot, rows, adapter] triples for segments but received " + describe(v));
  Napi::Array a = v.As<Napi::Array>();
  PEFT_CHECK(a.Length() % 3 == 0, ErrorCode::Argument, "Expected segments as [slot, rows, adapter] triples");
  std::vector<model::ServeSegment> out(a.Length() / 3);
  for (uint32_t i = 0; i < out.size(); ++i) {
    const std::string which = "segments[" + std::to_string(i) + "]";
    out[i].slot = to_int(a.Get(3 * i), which + ".slot");
    out[i].rows = to_int(a.Get(3 * i + 1), which + ".rows");
    out[i].adapter = to_int(a.Get(3 * i + 2), which + ".adapter");
  }
  return out;
}

// serveStepAsync(ids [M] i32, segments) -> logits [segments, vocab]
class ServeStepPlan : public OpPlan {
 public:
  ServeStepPlan(std::shared_ptr<ModelState> state, const Napi::CallbackInfo& info) : lease_(std::move(state)) {
    decoder(lease_);
    ids_ = reads(to_tensor(arg(info, 0), "ids"));
    segments_ = to_segments(arg(info, 1));
  }
  void execute() override { logits_ = std::make_shared<Tensor>(decoder(lease_).serve_step(*ids_, segments_)); }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, logits_); }

 private:
  ModelLease lease_;
  std::shared_ptr<Tensor> ids_, logits_;
  std::vector<model::ServeSegment> segments_;
};

}  // namespace

Napi::Value serve_open(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info) {
  ModelLease lease(state);
  return Napi::Number::New(info.Env(), static_cast<double>(decoder(lease).serve_open(to_int(arg(info, 0), "capacity"))));
}

Napi::Value serve_close(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info) {
  ModelLease lease(state);
  decoder(lease).serve_close(to_int(arg(info, 0), "slot"));
  return info.Env().Undefined();
}

Napi::Value serve_length(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info) {
  ModelLease lease(state);
  return Napi::Number::New(info.Env(), static_cast<double>(decoder(lease).serve_length(to_int(arg(info, 0), "slot"))));
}

// serveAddAdapter(modules: string[], a: Tensor[], b: Tensor[], scales: number[]) -> id
Napi::Value serve_add_adapter(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info) {
  ModelLease lease(state);
  const Napi::Value names_value = arg(info, 0), scales_value = arg(info, 3);
  if (!names_value.IsArray()) fail_argument("Expected an array of module names but received " + describe(names_value));
  if (!scales_value.IsArray()) fail_argument("Expected an array of LoRA scales but received " + describe(scales_value));
  Napi::Array names = names_value.As<Napi::Array>(), scales = scales_value.As<Napi::Array>();
  auto a = to_tensor_list(arg(info, 1), "a");
  auto b = to_tensor_list(arg(info, 2), "b");
  PEFT_CHECK(a.size() == names.Length() && b.size() == names.Length() && scales.Length() == names.Length(), ErrorCode::Argument,
             "Expected one lora_A, one lora_B and one scale per module name");
  nn::BatchLoraAdapter adapter;
  for (uint32_t i = 0; i < names.Length(); ++i) {
    const std::string module = to_string(names.Get(i), "modules[" + std::to_string(i) + "]");
    adapter[module] = nn::BatchLoraModule{a[i], b[i], static_cast<float>(to_number(scales.Get(i), "scales[" + std::to_string(i) + "]"))};
  }
  return Napi::Number::New(info.Env(), static_cast<double>(decoder(lease).serve_add_adapter(std::move(adapter))));
}

Napi::Value serve_remove_adapter(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info) {
  ModelLease lease(state);
  decoder(lease).serve_remove_adapter(to_int(arg(info, 0), "id"));
  return info.Env().Undefined();
}

Napi::Value serve_step_async(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info) {
  return run_async(info.Env(), std::make_unique<ServeStepPlan>(state, info));
}

}  // namespace peft::binding
