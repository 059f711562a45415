// RMSNorm and LayerNorm forward / backward over the last dimension, sync and async.
#include <napi.h>

#include "binding/args.h"
#include "binding/layer_args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/norm.h"

namespace peft::binding {

namespace {

using TensorPtr = std::shared_ptr<Tensor>;

// x [..., dim] f32 and an f32 [dim] parameter; returns the row shape (x's shape without dim).
Shape check_norm_input(const Tensor& x, const Tensor& w, int64_t& rows, int64_t& dim) {
  expect_dtype(x, {DType::F32}, "x");
  dim = expect_features(x, "x");
  expect_dtype(w, {DType::F32}, "weight");
  expect_shape(w, {dim}, "weight");
  rows = dim == 0 ? 0 : x.numel() / dim;
  return Shape(x.shape().begin(), x.shape().end() - 1);
}

void check_row_stat(const Tensor& t, const Shape& row_shape, const std::string& what) {
  expect_dtype(t, {DType::F32}, what);
  expect_shape(t, row_shape, what);
}

float check_eps(const Napi::Value& v) {
  const double eps = to_number(v, "eps");
  PEFT_CHECK(eps >= 0, ErrorCode::Range, "Expected a number >= 0 for eps but received " + number_text(eps));
  return static_cast<float>(eps);
}

// rmsnormForward(x, weight, eps) -> { y: [..., dim], rstd: [...] }
class RmsNormForwardPlan : public OpPlan {
 public:
  explicit RmsNormForwardPlan(const Napi::CallbackInfo& info) {
    x_ = reads(to_tensor(arg(info, 0), "x"));
    w_ = reads(to_tensor(arg(info, 1), "weight"));
    eps_ = check_eps(arg(info, 2));
    const Shape rows_shape = check_norm_input(*x_, *w_, rows_, dim_);
    y_ = writes(new_f32(x_->shape()));
    rstd_ = writes(new_f32(rows_shape));
  }
  void execute() override {
    kernels::rmsnorm_forward(rows_, dim_, x_->data_as<float>(), w_->data_as<float>(), eps_, y_->data_as<float>(),
                             rstd_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("y", wrap_tensor(env, y_));
    out.Set("rstd", wrap_tensor(env, rstd_));
    return out;
  }

 private:
  TensorPtr x_, w_, y_, rstd_;
  int64_t rows_ = 0, dim_ = 0;
  float eps_ = 0;
};

// rmsnormBackward(dy, x, weight, rstd, { needDx, gradWeight, accumulate }) -> { dx | null, gradWeight }
class RmsNormBackwardPlan : public OpPlan {
 public:
  explicit RmsNormBackwardPlan(const Napi::CallbackInfo& info) {
    dy_ = reads(to_tensor(arg(info, 0), "dy"));
    x_ = reads(to_tensor(arg(info, 1), "x"));
    w_ = reads(to_tensor(arg(info, 2), "weight"));
    rstd_ = reads(to_tensor(arg(info, 3), "rstd"));
    Napi::Object o = options_at(info, 4);
    const Shape rows_shape = check_norm_input(*x_, *w_, rows_, dim_);
    expect_dtype(*dy_, {DType::F32}, "dy");
    expect_shape(*dy_, x_->shape(), "dy");
    check_row_stat(*rstd_, rows_shape, "rstd");
    accumulate_ = option_bool(o, "accumulate", false);
    dw_ = out_option(o, "gradWeight", {dim_}, {dy_.get(), x_.get(), w_.get(), rstd_.get()});
    PEFT_CHECK(!accumulate_ || dw_.was_given(), ErrorCode::Argument,
               "Expected a gradWeight tensor when accumulate is true but received none");
    writes(dw_.tensor);
    if (option_bool(o, "needDx", true)) dx_ = writes(new_f32(x_->shape()));
  }
  void execute() override {
    kernels::rmsnorm_backward(rows_, dim_, dy_->data_as<float>(), x_->data_as<float>(), w_->data_as<float>(),
                              rstd_->data_as<float>(), dx_ ? dx_->data_as<float>() : nullptr,
                              dw_.tensor->data_as<float>(), accumulate_);
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("dx", dx_ ? Napi::Value(wrap_tensor(env, dx_)) : env.Null());
    out.Set("gradWeight", dw_.value(env));
    return out;
  }

 private:
  TensorPtr dy_, x_, w_, rstd_, dx_;
  OutTensor dw_;
  int64_t rows_ = 0, dim_ = 0;
  bool accumulate_ = false;
};

// layernormForward(x, weight, bias | null, eps) -> { y: [..., dim], mean: [...], rstd: [...] }
class LayerNormForwardPlan : public OpPlan {
 public:
  explicit LayerNormForwardPlan(const Napi::CallbackInfo& info) {
    x_ = reads(to_tensor(arg(info, 0), "x"));
    w_ = reads(to_tensor(arg(info, 1), "weight"));
    b_ = reads(to_tensor_or_null(arg(info, 2), "bias"));
    eps_ = check_eps(arg(info, 3));
    const Shape rows_shape = check_norm_input(*x_, *w_, rows_, dim_);
    if (b_) {
      expect_dtype(*b_, {DType::F32}, "bias");
      expect_shape(*b_, {dim_}, "bias");
    }
    y_ = writes(new_f32(x_->shape()));
    mean_ = writes(new_f32(rows_shape));
    rstd_ = writes(new_f32(rows_shape));
  }
  void execute() override {
    kernels::layernorm_forward(rows_, dim_, x_->data_as<float>(), w_->data_as<float>(),
                               b_ ? b_->data_as<float>() : nullptr, eps_, y_->data_as<float>(),
                               mean_->data_as<float>(), rstd_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("y", wrap_tensor(env, y_));
    out.Set("mean", wrap_tensor(env, mean_));
    out.Set("rstd", wrap_tensor(env, rstd_));
    return out;
  }

 private:
  TensorPtr x_, w_, b_, y_, mean_, rstd_;
  int64_t rows_ = 0, dim_ = 0;
  float eps_ = 0;
};

// layernormBackward(dy, x, weight, mean, rstd, { needDx, gradWeight, gradBias, accumulate })
//   -> { dx | null, gradWeight, gradBias }
class LayerNormBackwardPlan : public OpPlan {
 public:
  explicit LayerNormBackwardPlan(const Napi::CallbackInfo& info) {
    dy_ = reads(to_tensor(arg(info, 0), "dy"));
    x_ = reads(to_tensor(arg(info, 1), "x"));
    w_ = reads(to_tensor(arg(info, 2), "weight"));
    mean_ = reads(to_tensor(arg(info, 3), "mean"));
    rstd_ = reads(to_tensor(arg(info, 4), "rstd"));
    Napi::Object o = options_at(info, 5);
    const Shape rows_shape = check_norm_input(*x_, *w_, rows_, dim_);
    expect_dtype(*dy_, {DType::F32}, "dy");
    expect_shape(*dy_, x_->shape(), "dy");
    check_row_stat(*mean_, rows_shape, "mean");
    check_row_stat(*rstd_, rows_shape, "rstd");
    accumulate_ = option_bool(o, "accumulate", false);
    const std::initializer_list<const Tensor*> inputs = {dy_.get(), x_.get(), w_.get(), mean_.get(), rstd_.get()};
    dw_ = out_option(o, "gradWeight", {dim_}, inputs);
    db_ = out_option(o, "gradBias", {dim_}, inputs);
    PEFT_CHECK(!accumulate_ || (dw_.was_given() && db_.was_given()), ErrorCode::Argument,
               "Expected gradWeight and gradBias tensors when accumulate is true but received none");
    PEFT_CHECK(dw_.tensor->storage() != db_.tensor->storage(), ErrorCode::Argument,
               "Expected distinct tensors for gradWeight and gradBias but received one tensor for both");
    writes(dw_.tensor);
    writes(db_.tensor);
    if (option_bool(o, "needDx", true)) dx_ = writes(new_f32(x_->shape()));
  }
  void execute() override {
    kernels::layernorm_backward(rows_, dim_, dy_->data_as<float>(), x_->data_as<float>(), w_->data_as<float>(),
                                mean_->data_as<float>(), rstd_->data_as<float>(), dx_ ? dx_->data_as<float>() : nullptr,
                                dw_.tensor->data_as<float>(), db_.tensor->data_as<float>(), accumulate_);
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("dx", dx_ ? Napi::Value(wrap_tensor(env, dx_)) : env.Null());
    out.Set("gradWeight", dw_.value(env));
    out.Set("gradBias", db_.value(env));
    return out;
  }

 private:
  TensorPtr dy_, x_, w_, mean_, rstd_, dx_;
  OutTensor dw_, db_;
  int64_t rows_ = 0, dim_ = 0;
  bool accumulate_ = false;
};

}  // namespace

void register_norm_ops(Napi::Env env, Napi::Object exports) {
  export_op<RmsNormForwardPlan>(env, exports, "rmsnormForward");
  export_op<RmsNormBackwardPlan>(env, exports, "rmsnormBackward");
  export_op<LayerNormForwardPlan>(env, exports, "layernormForward");
  export_op<LayerNormBackwardPlan>(env, exports, "layernormBackward");
}

}  // namespace peft::binding
