// safetensors reading (a native class over the mapped file) and atomic writing, sync and async.
#include <napi.h>

#include "binding/args.h"
#include "binding/errors.h"
#include "binding/op_runner.h"
#include "io/safetensors.h"

namespace peft::binding {

namespace {

// new NativeSafetensors(path): entries(), metadata(), tensor(name)
class SafetensorsWrap : public Napi::ObjectWrap<SafetensorsWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeSafetensors",
                       {InstanceMethod<&SafetensorsWrap::entries>("entries"),
                        InstanceMethod<&SafetensorsWrap::metadata>("metadata"),
                        InstanceMethod<&SafetensorsWrap::tensor>("tensor")});
  }

  explicit SafetensorsWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SafetensorsWrap>(info) {
    guarded(info, [&] {
      file_ = io::SafetensorsFile::open(to_string(arg(info, 0), "path"));
      return info.Env().Undefined();
    });
  }

 private:
  Napi::Value entries(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      const auto& list = file_->entries();
      Napi::Array out = Napi::Array::New(env, list.size());
      for (size_t i = 0; i < list.size(); ++i) {
        const auto& e = list[i];
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", e.name);
        o.Set("dtype", e.dtype);
        Napi::Array shape = Napi::Array::New(env, e.shape.size());
        for (size_t d = 0; d < e.shape.size(); ++d) shape.Set(d, Napi::Number::New(env, static_cast<double>(e.shape[d])));
        o.Set("shape", shape);
        o.Set("begin", Napi::Number::New(env, static_cast<double>(e.begin)));
        o.Set("end", Napi::Number::New(env, static_cast<double>(e.end)));
        out.Set(static_cast<uint32_t>(i), o);
      }
      return out;
    });
  }

  Napi::Value metadata(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Object out = Napi::Object::New(info.Env());
      for (const auto& [k, v] : file_->metadata()) out.Set(k, v);
      return out;
    });
  }

  Napi::Value tensor(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      const std::string name = to_string(arg(info, 0), "name");
      const io::SafetensorsEntry* e = file_->find(name);
      PEFT_CHECK(e != nullptr, ErrorCode::Argument, file_->path() + " has no tensor named \"" + name + "\"");
      return wrap_tensor(info.Env(), std::make_shared<Tensor>(file_->tensor(*e)));
    });
  }

  std::shared_ptr<io::SafetensorsFile> file_;
};

// writeSafetensors(path, names: string[], tensors: NativeTensor[], metadata: Record<string, string>)
class WriteSafetensorsPlan : public OpPlan {
 public:
  explicit WriteSafetensorsPlan(const Napi::CallbackInfo& info) {
    path_ = to_string(arg(info, 0), "path");
    Napi::Value names_value = arg(info, 1);
    if (!names_value.IsArray()) fail_argument("Expected an array of names for names but received " + describe(names_value));
    Napi::Array names = names_value.As<Napi::Array>();
    auto tensors = to_tensor_list(arg(info, 2), "tensors");
    PEFT_CHECK(names.Length() == tensors.size(), ErrorCode::Argument,
               "Expected one name per tensor but received " + std::to_string(names.Length()) + " names and " +
                   std::to_string(tensors.size()) + " tensors");
    for (size_t i = 0; i < tensors.size(); ++i) {
      entries_.push_back({to_string(names.Get(static_cast<uint32_t>(i)), "names[" + std::to_string(i) + "]"),
                          reads(tensors[i])});
    }
    Napi::Value meta = arg(info, 3);
    if (!meta.IsUndefined() && !meta.IsNull()) {
      Napi::Object o = to_object(meta, "metadata");
      Napi::Array keys = o.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        const std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
        metadata_[k] = to_string(o.Get(k), "metadata." + k);
      }
    }
  }
  void execute() override { io::write_safetensors(path_, entries_, metadata_); }
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }

 private:
  std::string path_;
  std::vector<io::NamedTensor> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace

void register_safetensors(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeSafetensors", SafetensorsWrap::define(env));
  export_op<WriteSafetensorsPlan>(env, exports, "writeSafetensors");
}

}  // namespace peft::binding
