// SwiGLU and tanh-GELU forward / backward, sync and async.
#include <napi.h>

#include "binding/args.h"
#include "binding/layer_args.h"
#include "binding/op_runner.h"
#include "kernels/activation.h"

namespace peft::binding {

namespace {

using TensorPtr = std::shared_ptr<Tensor>;

TensorPtr f32_input(const Napi::Value& v, const std::string& what) {
  TensorPtr t = to_tensor(v, what);
  expect_dtype(*t, {DType::F32}, what);
  return t;
}

// swigluForward(gate, up) -> h, all [..., intermediate]
class SwiGluForwardPlan : public OpPlan {
 public:
  explicit SwiGluForwardPlan(const Napi::CallbackInfo& info) {
    gate_ = reads(f32_input(arg(info, 0), "gate"));
    up_ = reads(f32_input(arg(info, 1), "up"));
    expect_shape(*up_, gate_->shape(), "up");
    h_ = writes(new_f32(gate_->shape()));
  }
  void execute() override {
    kernels::swiglu_forward(gate_->numel(), gate_->data_as<float>(), up_->data_as<float>(), h_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, h_); }

 private:
  TensorPtr gate_, up_, h_;
};

// swigluBackward(dh, gate, up) -> { dGate, dUp }
class SwiGluBackwardPlan : public OpPlan {
 public:
  explicit SwiGluBackwardPlan(const Napi::CallbackInfo& info) {
    dh_ = reads(f32_input(arg(info, 0), "dh"));
    gate_ = reads(f32_input(arg(info, 1), "gate"));
    up_ = reads(f32_input(arg(info, 2), "up"));
    expect_shape(*gate_, dh_->shape(), "gate");
    expect_shape(*up_, dh_->shape(), "up");
    dgate_ = writes(new_f32(dh_->shape()));
    dup_ = writes(new_f32(dh_->shape()));
  }
  void execute() override {
    kernels::swiglu_backward(dh_->numel(), dh_->data_as<float>(), gate_->data_as<float>(), up_->data_as<float>(),
                             dgate_->data_as<float>(), dup_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("dGate", wrap_tensor(env, dgate_));
    out.Set("dUp", wrap_tensor(env, dup_));
    return out;
  }

 private:
  TensorPtr dh_, gate_, up_, dgate_, dup_;
};

// geluForward(x) -> y (tanh approximation)
class GeluForwardPlan : public OpPlan {
 public:
  explicit GeluForwardPlan(const Napi::CallbackInfo& info) {
    x_ = reads(f32_input(arg(info, 0), "x"));
    y_ = writes(new_f32(x_->shape()));
  }
  void execute() override { kernels::gelu_tanh_forward(x_->numel(), x_->data_as<float>(), y_->data_as<float>()); }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, y_); }

 private:
  TensorPtr x_, y_;
};

// geluBackward(dy, x) -> dx
class GeluBackwardPlan : public OpPlan {
 public:
  explicit GeluBackwardPlan(const Napi::CallbackInfo& info) {
    dy_ = reads(f32_input(arg(info, 0), "dy"));
    x_ = reads(f32_input(arg(info, 1), "x"));
    expect_shape(*x_, dy_->shape(), "x");
    dx_ = writes(new_f32(x_->shape()));
  }
  void execute() override {
    kernels::gelu_tanh_backward(x_->numel(), dy_->data_as<float>(), x_->data_as<float>(), dx_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, dx_); }

 private:
  TensorPtr dy_, x_, dx_;
};

}  // namespace

void register_activation_ops(Napi::Env env, Napi::Object exports) {
  export_op<SwiGluForwardPlan>(env, exports, "swigluForward");
  export_op<SwiGluBackwardPlan>(env, exports, "swigluBackward");
  export_op<GeluForwardPlan>(env, exports, "geluForward");
  export_op<GeluBackwardPlan>(env, exports, "geluBackward");
}

}  // namespace peft::binding
