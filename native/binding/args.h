// Argument conversion for the N-API surface. Every failure is a peft::Error whose message says what
// was expected for which argument and what was received (the facade validates first; this is the
// backstop for direct callers).
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace peft::binding {

std::string describe(const Napi::Value& v);  // "the number 5", "undefined", "an object", ...
std::string number_text(double v);            // shortest form: 5, 0.001, 1e+06, NaN, Infinity

Napi::Value arg(const Napi::CallbackInfo& info, size_t index);
std::shared_ptr<Tensor> to_tensor(const Napi::Value& v, const std::string& what);
std::shared_ptr<Tensor> to_tensor_or_null(const Napi::Value& v, const std::string& what);
std::vector<std::shared_ptr<Tensor>> to_tensor_list(const Napi::Value& v, const std::string& what);
Napi::Object to_object(const Napi::Value& v, const std::string& what);
double to_number(const Napi::Value& v, const std::string& what);
int64_t to_int(const Napi::Value& v, const std::string& what);
bool to_bool(const Napi::Value& v, const std::string& what);
std::string to_string(const Napi::Value& v, const std::string& what);
// Option readers: missing or undefined gives the fallback.
double option_number(const Napi::Object& o, const char* key, double fallback);
bool option_bool(const Napi::Object& o, const char* key, bool fallback);

// Checks that t is a contiguous f32 (or listed dtype) tensor of the given shape.
void expect_shape(const Tensor& t, const Shape& shape, const std::string& what);
void expect_dtype(const Tensor& t, std::initializer_list<DType> allowed, const std::string& what);
void expect_ndim(const Tensor& t, int ndim, const std::string& what);

// A JS tensor object owning t (reports its memory to V8).
Napi::Object wrap_tensor(Napi::Env env, std::shared_ptr<Tensor> t);

}  // namespace peft::binding
