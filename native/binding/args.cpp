#include "binding/args.h"

#include <cmath>
#include <cstdio>

#include "binding/errors.h"
#include "binding/tensor_wrap.h"
#include "core/error.h"

namespace peft::binding {

std::string number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return "the number " + number_text(v.As<Napi::Number>().DoubleValue());
  if (v.IsBoolean()) return "a boolean";
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an array";
  if (v.IsTypedArray()) return "a typed array";
  if (v.IsFunction()) return "a function";
  if (v.IsObject()) return "an object";
  return "a value of another type";
}

Napi::Value arg(const Napi::CallbackInfo& info, size_t index) {
  return index < info.Length() ? info[index] : info.Env().Undefined();
}

std::shared_ptr<Tensor> to_tensor(const Napi::Value& v, const std::string& what) {
  TensorWrap* wrap = TensorWrap::unwrap(v);
  if (wrap == nullptr) fail_argument("Expected a Tensor for " + what + " but received " + describe(v));
  return wrap->tensor(what);
}

std::shared_ptr<Tensor> to_tensor_or_null(const Napi::Value& v, const std::string& what) {
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  return to_tensor(v, what);
}

std::vector<std::shared_ptr<Tensor>> to_tensor_list(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) fail_argument("Expected an array of Tensors for " + what + " but received " + describe(v));
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<std::shared_ptr<Tensor>> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(to_tensor(arr.Get(i), what + "[" + std::to_string(i) + "]"));
  return out;
}

Napi::Object to_object(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject() || v.IsArray()) fail_argument("Expected an object for " + what + " but received " + describe(v));
  return v.As<Napi::Object>();
}

double to_number(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) fail_argument("Expected a number for " + what + " but received " + describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail_argument("Expected a finite number for " + what + " but received " + number_text(d));
  return d;
}

int64_t to_int(const Napi::Value& v, const std::string& what) {
  double d = to_number(v, what);
  if (d != std::floor(d) || std::fabs(d) > 9007199254740991.0) {
    fail_argument("Expected an integer for " + what + " but received " + number_text(d));
  }
  return static_cast<int64_t>(d);
}

bool to_bool(const Napi::Value& v, const std::string& what) {
  if (!v.IsBoolean()) fail_argument("Expected a boolean for " + what + " but received " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

std::string to_string(const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) fail_argument("Expected a string for " + what + " but received " + describe(v));
  return v.As<Napi::String>().Utf8Value();
}

double option_number(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? fallback : to_number(v, std::string("option ") + key);
}

bool option_bool(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? fallback : to_bool(v, std::string("option ") + key);
}

void expect_shape(const Tensor& t, const Shape& shape, const std::string& what) {
  PEFT_CHECK(t.shape() == shape, ErrorCode::Shape,
             "Expected shape " + shape_to_string(shape) + " for " + what + " but received " +
                 shape_to_string(t.shape()));
}

void expect_dtype(const Tensor& t, std::initializer_list<DType> allowed, const std::string& what) {
  std::string names;
  for (DType d : allowed) {
    if (t.dtype() == d) return;
    names += (names.empty() ? "" : " or ") + std::string(dtype_name(d));
  }
  throw Error(ErrorCode::DType, "Expected dtype " + names + " for " + what + " but received " + dtype_name(t.dtype()));
}

void expect_ndim(const Tensor& t, int ndim, const std::string& what) {
  PEFT_CHECK(t.ndim() == ndim, ErrorCode::Shape,
             "Expected a " + std::to_string(ndim) + "-D tensor for " + what + " but received shape " +
                 shape_to_string(t.shape()));
}

Napi::Object wrap_tensor(Napi::Env env, std::shared_ptr<Tensor> t) { return TensorWrap::create(env, std::move(t)); }

}  // namespace peft::binding
