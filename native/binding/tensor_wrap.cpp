#include "binding/tensor_wrap.h"

#include <cstring>

#include "binding/args.h"
#include "binding/errors.h"
#include "core/error.h"
#include "kernels/convert.h"

namespace peft::binding {

namespace {

napi_typedarray_type typed_array_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return napi_float32_array;
    case DType::BF16:
    case DType::F16: return napi_uint16_array;
    case DType::I32: return napi_int32_array;
    case DType::U8: return napi_uint8_array;
  }
  return napi_uint8_array;
}

const char* typed_array_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "Float32Array";
    case DType::BF16:
    case DType::F16: return "Uint16Array";
    case DType::I32: return "Int32Array";
    case DType::U8: return "Uint8Array";
  }
  return "?";
}

Shape to_shape(const Napi::Value& v) {
  if (!v.IsArray()) fail_argument("Expected an array of dimensions for shape but received " + describe(v));
  Napi::Array arr = v.As<Napi::Array>();
  Shape shape;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    int64_t d = to_int(arr.Get(i), "shape[" + std::to_string(i) + "]");
    PEFT_CHECK(d >= 0, ErrorCode::Shape, "Expected non-negative dimensions for shape but received " +
                                             std::to_string(d) + " at shape[" + std::to_string(i) + "]");
    shape.push_back(d);
  }
  return shape;
}

}  // namespace

Napi::Function TensorWrap::define(Napi::Env env) {
  Napi::Function cls = DefineClass(env, "NativeTensor",
                                   {
                                       InstanceMethod<&TensorWrap::shape>("shape"),
                                       InstanceMethod<&TensorWrap::dtype>("dtype"),
                                       InstanceMethod<&TensorWrap::disposed>("disposed"),
                                       InstanceMethod<&TensorWrap::to_float32_array>("toFloat32Array"),
                                       InstanceMethod<&TensorWrap::to_typed_array>("toTypedArray"),
                                       InstanceMethod<&TensorWrap::to>("to"),
                                       InstanceMethod<&TensorWrap::dispose>("dispose"),
                                   });
  addon_data(env).tensor_class = Napi::Persistent(cls);
  return cls;
}

Napi::Object TensorWrap::create(Napi::Env env, std::shared_ptr<Tensor> t) {
  Napi::Object obj = addon_data(env).tensor_class.New({});
  TensorWrap::Unwrap(obj)->adopt(env, std::move(t));
  return obj;
}

TensorWrap* TensorWrap::unwrap(const Napi::Value& v) {
  if (!v.IsObject()) return nullptr;
  Napi::Env env = v.Env();
  Napi::Object obj = v.As<Napi::Object>();
  if (!obj.InstanceOf(addon_data(env).tensor_class.Value())) return nullptr;
  return TensorWrap::Unwrap(obj);
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  if (info.Length() == 0) return;  // created empty by create(), which adopts a tensor
  guarded(info, [&] { return construct(info); });
}

Napi::Value TensorWrap::construct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value data = arg(info, 0);
  DType source = parse_dtype(to_string(arg(info, 1), "source dtype"));
  Shape shape = to_shape(arg(info, 2));
  DType dtype = parse_dtype(to_string(arg(info, 3), "dtype"));
  const bool has_data = !data.IsNull() && !data.IsUndefined();
  auto t = std::make_shared<Tensor>(has_data ? Tensor::uninitialized(dtype, shape) : Tensor(dtype, shape));
  if (has_data) {
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != typed_array_type(source)) {
      fail_argument(std::string("Expected a ") + typed_array_name(source) + " of " + dtype_name(source) +
                    " values for tensor data but received " + describe(data));
    }
    Napi::TypedArray arr = data.As<Napi::TypedArray>();
    PEFT_CHECK(static_cast<int64_t>(arr.ElementLength()) == t->numel(), ErrorCode::Shape,
               "Expected " + std::to_string(t->numel()) + " values for a tensor of shape " + shape_to_string(shape) +
                   " but received " + std::to_string(arr.ElementLength()));
    const char* bytes = static_cast<const char*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    kernels::convert(t->data(), dtype, bytes, source, t->numel());
  }
  adopt(env, std::move(t));
  return env.Undefined();
}

void TensorWrap::adopt(Napi::Env env, std::shared_ptr<Tensor> t) {
  release_memory(env);
  tensor_ = std::move(t);
  // Views of mapped files are backed by the page cache, not by our allocations.
  reported_bytes_ = tensor_->storage()->is_view() ? 0 : static_cast<int64_t>(tensor_->nbytes());
  Napi::MemoryManagement::AdjustExternalMemory(env, reported_bytes_);
}

void TensorWrap::release_memory(Napi::Env env) {
  if (reported_bytes_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -reported_bytes_);
    reported_bytes_ = 0;
  }
  tensor_.reset();
}

TensorWrap::~TensorWrap() {
  if (reported_bytes_ != 0) {
    // Node refuses a null result pointer (napi_invalid_arg) and would then forget the adjustment:
    // every collected tensor would stay counted as external memory, and V8 would collect ever sooner.
    int64_t total = 0;
    napi_adjust_external_memory(Env(), -reported_bytes_, &total);
  }
}

std::shared_ptr<Tensor> TensorWrap::tensor(const std::string& what) const {
  PEFT_CHECK(tensor_ != nullptr, ErrorCode::Disposed, "Tensor " + what + " was disposed and cannot be used");
  return tensor_;
}

Napi::Value TensorWrap::shape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto t = tensor("this");
    Napi::Array out = Napi::Array::New(info.Env(), t->ndim());
    for (int i = 0; i < t->ndim(); ++i) out.Set(i, Napi::Number::New(info.Env(), static_cast<double>(t->dim(i))));
    return out;
  });
}

Napi::Value TensorWrap::dtype(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtype_name(tensor("this")->dtype())); });
}

Napi::Value TensorWrap::disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor_ == nullptr);
}

Napi::Value TensorWrap::to_float32_array(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto t = tensor("this");
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(t->numel()));
    kernels::convert(out.Data(), DType::F32, t->data(), t->dtype(), t->numel());
    return out;
  });
}

Napi::Value TensorWrap::to_typed_array(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto t = tensor("this");
    const size_t n = static_cast<size_t>(t->numel());
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, t->nbytes());
    if (t->nbytes()) std::memcpy(buffer.Data(), t->data(), t->nbytes());
    switch (t->dtype()) {
      case DType::F32: return Napi::Float32Array::New(env, n, buffer, 0);
      case DType::BF16:
      case DType::F16: return Napi::Uint16Array::New(env, n, buffer, 0);
      case DType::I32: return Napi::Int32Array::New(env, n, buffer, 0);
      case DType::U8: return Napi::Uint8Array::New(env, n, buffer, 0);
    }
    return env.Undefined();
  });
}

Napi::Value TensorWrap::to(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto t = tensor("this");
    DType dtype = parse_dtype(to_string(arg(info, 0), "dtype"));
    auto out = std::make_shared<Tensor>(Tensor::uninitialized(dtype, t->shape()));
    kernels::convert(out->data(), dtype, t->data(), t->dtype(), t->numel());
    return create(info.Env(), std::move(out));
  });
}

Napi::Value TensorWrap::dispose(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (tensor_ != nullptr) {
      PEFT_CHECK(!tensor_->storage()->busy(), ErrorCode::Busy,
                 "Tensor is in use by a running asynchronous call and cannot be disposed; await the call first");
      release_memory(info.Env());
    }
    return info.Env().Undefined();
  });
}

}  // namespace peft::binding
