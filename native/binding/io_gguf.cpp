// GGUF files from JS: new GgufReader(path) parses the header (E_IO / E_FORMAT / E_UNSUPPORTED);
// info() gives version, metadata and tensor infos; load(name) / loadAsync(name) give a NativeTensor
// (a zero-copy view of the mapped file for F32 / F16 / BF16 / I32, dequantized f32 for the ggml block
// types); loadBlocks(name) gives a block type's bytes as stored.
#include <napi.h>

#include <memory>

#include "binding/args.h"
#include "binding/errors.h"
#include "binding/gguf_values.h"
#include "binding/op_runner.h"
#include "binding/tensor_wrap.h"
#include "core/error.h"
#include "io/gguf.h"

namespace peft::binding {

namespace {

using io::GgufFile;
using io::GgufTensorInfo;

// Loads one tensor; on a libuv worker for loadAsync (dequantizing a large tensor takes a while).
// blocks: the stored bytes of a ggml block-type tensor as they are (loadBlocks), else a tensor.
class GgufLoadPlan : public OpPlan {
 public:
  GgufLoadPlan(std::shared_ptr<GgufFile> file, const GgufTensorInfo* info, bool blocks = false, bool check = true)
      : file_(std::move(file)), info_(info), blocks_(blocks), check_(check) {}
  void execute() override {
    out_ = std::make_shared<Tensor>(blocks_ ? file_->load_blocks(*info_, check_) : file_->load(*info_));
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, out_); }

 private:
  std::shared_ptr<GgufFile> file_;  // keeps info_ valid
  const GgufTensorInfo* info_;
  bool blocks_, check_;
  std::shared_ptr<Tensor> out_;
};

// Object.create(null): keys come from the file, and a key such as "__proto__" must stay a plain key.
Napi::Object null_prototype_object(Napi::Env env) {
  Napi::Function create = env.Global().Get("Object").As<Napi::Object>().Get("create").As<Napi::Function>();
  return create.Call({env.Null()}).As<Napi::Object>();
}

class GgufWrap : public Napi::ObjectWrap<GgufWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "GgufReader",
                       {
                           InstanceMethod<&GgufWrap::info>("info"),
                           InstanceMethod<&GgufWrap::load>("load"),
                           InstanceMethod<&GgufWrap::load_async>("loadAsync"),
                           InstanceMethod<&GgufWrap::load_blocks>("loadBlocks"),
                           InstanceMethod<&GgufWrap::is_view>("isView"),
                           InstanceMethod<&GgufWrap::close>("close"),
                       });
  }

  explicit GgufWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GgufWrap>(info) {
    guarded(info, [&]() -> Napi::Value {
      file_ = GgufFile::open(to_string(arg(info, 0), "path"));
      return info.Env().Undefined();
    });
  }

 private:
  std::shared_ptr<GgufFile> file(const char* member) const {
    PEFT_CHECK(file_ != nullptr, ErrorCode::Disposed,
               std::string("GGUF file was closed and cannot be used (") + member + ")");
    return file_;
  }

  // The tensor info for name, or E_ARGUMENT listing a few of the names there are.
  const GgufTensorInfo* lookup(const GgufFile& f, const Napi::Value& v) const {
    const std::string name = to_string(v, "name");
    const GgufTensorInfo* t = f.find(name);
    if (t == nullptr) {
      std::string some;
      const size_t shown = std::min<size_t>(f.tensors().size(), 5);
      for (size_t k = 0; k < shown; ++k) some += (k ? ", " : "") + std::string("\"") + f.tensors()[k].name + "\"";
      if (f.tensors().size() > shown) some += ", ... (" + std::to_string(f.tensors().size()) + " in all)";
      fail_argument("Expected the name of a tensor in " + f.path() + " (" + (some.empty() ? "it has none" : some) +
                    ") for name but received \"" + name + "\"");
    }
    return t;
  }

  Napi::Value info(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto f = file("info()");
      Napi::Object out = Napi::Object::New(env);
      out.Set("version", f->version());
      out.Set("alignment", Napi::Number::New(env, static_cast<double>(f->alignment())));
      out.Set("dataOffset", Napi::Number::New(env, static_cast<double>(f->data_offset())));
      Napi::Object metadata = null_prototype_object(env);
      Napi::Object types = null_prototype_object(env);
      for (const auto& [key, value] : f->metadata()) {
        metadata.Set(key, gguf_value_to_js(env, value));
        types.Set(key, gguf_value_type_text(value));
      }
      out.Set("metadata", metadata);
      out.Set("types", types);
      Napi::Array tensors = Napi::Array::New(env, f->tensors().size());
      for (size_t k = 0; k < f->tensors().size(); ++k) {
        const GgufTensorInfo& t = f->tensors()[k];
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", t.name);
        Napi::Array shape = Napi::Array::New(env, t.shape.size());
        for (size_t d = 0; d < t.shape.size(); ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(t.shape[d]));
        o.Set("shape", shape);
        o.Set("type", io::ggml_type_traits(t.type)->name);
        o.Set("offset", Napi::Number::New(env, static_cast<double>(t.offset)));
        o.Set("nbytes", Napi::Number::New(env, static_cast<double>(t.nbytes)));
        tensors.Set(static_cast<uint32_t>(k), o);
      }
      out.Set("tensors", tensors);
      return out;
    });
  }

  Napi::Value load(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto f = file("load()");
      return run_sync(info.Env(), std::make_unique<GgufLoadPlan>(f, lookup(*f, arg(info, 0))));
    });
  }

  Napi::Value load_async(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto f = file("loadAsync()");
      return run_async(info.Env(), std::make_unique<GgufLoadPlan>(f, lookup(*f, arg(info, 0))));
    });
  }

  // loadBlocks(name, checkFinite = true): u8 [nbytes], the block bytes of a quantized tensor (a
  // view of the file); E_NONFINITE for a NaN or infinite block scale unless checkFinite is false.
  Napi::Value load_blocks(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto f = file("loadBlocks()");
      const bool check = arg(info, 1).IsUndefined() || arg(info, 1).ToBoolean().Value();
      return run_sync(info.Env(), std::make_unique<GgufLoadPlan>(f, lookup(*f, arg(info, 0)), true, check));
    });
  }

  // isView(tensor): whether the tensor's bytes are this file's mapped bytes (zero-copy).
  Napi::Value is_view(const Napi::CallbackInfo& info) {
    return guarded(info, [&]() -> Napi::Value {
      auto f = file("isView()");
      return Napi::Boolean::New(info.Env(), f->is_view(*to_tensor(arg(info, 0), "tensor")));
    });
  }

  // Drops this handle's reference; the mapping lives on while tensors viewing it do.
  Napi::Value close(const Napi::CallbackInfo& info) {
    file_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<GgufFile> file_;
};

}  // namespace

void register_gguf(Napi::Env env, Napi::Object exports) { exports.Set("GgufReader", GgufWrap::define(env)); }

}  // namespace peft::binding
