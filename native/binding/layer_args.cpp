#include "binding/layer_args.h"

#include <cstring>

#include "binding/args.h"
#include "core/error.h"

namespace peft::binding {

Napi::Object options_at(const Napi::CallbackInfo& info, size_t index) {
  Napi::Value v = arg(info, index);
  return v.IsUndefined() ? Napi::Object::New(info.Env()) : to_object(v, "options");
}

std::shared_ptr<Tensor> new_f32(const Shape& shape) {
  return std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, shape));
}

std::shared_ptr<Tensor> new_zeros_f32(const Shape& shape) {
  auto t = new_f32(shape);
  std::memset(t->data(), 0, t->nbytes());
  return t;
}

int64_t expect_features(const Tensor& t, const std::string& what) {
  PEFT_CHECK(t.ndim() >= 1, ErrorCode::Shape,
             "Expected a tensor with at least one dimension for " + what + " but received shape " +
                 shape_to_string(t.shape()));
  return t.dim(-1);
}

Napi::Value OutTensor::value(Napi::Env env) {
  return was_given() ? Napi::Value(given.Value()) : Napi::Value(wrap_tensor(env, tensor));
}

void expect_distinct(const Tensor& out, std::initializer_list<const Tensor*> inputs, const std::string& what) {
  for (const Tensor* in : inputs) {
    PEFT_CHECK(in == nullptr || out.storage() != in->storage(), ErrorCode::Argument,
               "Expected a tensor distinct from the inputs for " + what + " but received one that shares their memory");
  }
}

OutTensor out_option(const Napi::Object& options, const char* key, const Shape& shape,
                     std::initializer_list<const Tensor*> inputs, bool zero_new) {
  OutTensor out;
  Napi::Value v = options.Get(key);
  const std::string what = std::string("option ") + key;
  out.tensor = to_tensor_or_null(v, what);
  if (out.tensor) {
    expect_dtype(*out.tensor, {DType::F32}, what);
    expect_shape(*out.tensor, shape, what);
    expect_distinct(*out.tensor, inputs, what);
    out.given = Napi::Persistent(v.As<Napi::Object>());
  } else {
    out.tensor = zero_new ? new_zeros_f32(shape) : new_f32(shape);
  }
  return out;
}

}  // namespace peft::binding
