// The JS-visible native tensor: owns a peft::Tensor, reports its bytes to V8, frees them on GC or
// dispose(). The facade (lib/tensor.ts) wraps it in the public Tensor class.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "core/tensor.h"

namespace peft::binding {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  static Napi::Object create(Napi::Env env, std::shared_ptr<Tensor> t);
  static TensorWrap* unwrap(const Napi::Value& v);  // null when v is not a native tensor

  // new NativeTensor(data: TypedArray | null, sourceDtype: string, shape: number[], dtype: string)
  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;

  // The tensor, or E_DISPOSED naming `what`.
  std::shared_ptr<Tensor> tensor(const std::string& what) const;

 private:
  Napi::Value construct(const Napi::CallbackInfo& info);
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value to_float32_array(const Napi::CallbackInfo& info);
  Napi::Value to_typed_array(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  void adopt(Napi::Env env, std::shared_ptr<Tensor> t);
  void release_memory(Napi::Env env);

  std::shared_ptr<Tensor> tensor_;
  int64_t reported_bytes_ = 0;
};

}  // namespace peft::binding
