// Argument helpers shared by the transformer-layer ops (norms, RoPE, activations, loss, embedding).
#pragma once
#include <napi.h>

#include <initializer_list>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace peft::binding {

// The options object at info[index], or {} when it is undefined.
Napi::Object options_at(const Napi::CallbackInfo& info, size_t index);

std::shared_ptr<Tensor> new_f32(const Shape& shape);
std::shared_ptr<Tensor> new_zeros_f32(const Shape& shape);

// A tensor with at least one dimension; returns its last dimension (the feature size).
int64_t expect_features(const Tensor& t, const std::string& what);

// An output tensor the caller may pass (options[key]) or that the op creates. value() returns the
// caller's JS object when one was given, so results keep object identity.
struct OutTensor {
  std::shared_ptr<Tensor> tensor;
  Napi::ObjectReference given;
  bool was_given() const { return !given.IsEmpty(); }
  Napi::Value value(Napi::Env env);
};

// Reads options[key] as an optional f32 tensor of the given shape, distinct in memory from every
// tensor in inputs; creates an f32 tensor (zeros when zero_new) when absent.
OutTensor out_option(const Napi::Object& options, const char* key, const Shape& shape,
                     std::initializer_list<const Tensor*> inputs, bool zero_new = false);

// Throws E_ARGUMENT when out shares memory with one of inputs.
void expect_distinct(const Tensor& out, std::initializer_list<const Tensor*> inputs, const std::string& what);

}  // namespace peft::binding
