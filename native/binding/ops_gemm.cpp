// ops.matmul and the fused low-rank (LoRA) linear, sync and async.
#include <napi.h>

#include "binding/args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/lowrank.h"

namespace peft::binding {

namespace {

// matmul(a, b, out | null, { transA, transB, alpha, accumulate }) -> out [M, N] f32
class MatmulPlan : public OpPlan {
 public:
  explicit MatmulPlan(const Napi::CallbackInfo& info) {
    a_ = reads(to_tensor(arg(info, 0), "a"));
    b_ = reads(to_tensor(arg(info, 1), "b"));
    Napi::Value out_value = arg(info, 2);
    Napi::Value opts_value = arg(info, 3);
    Napi::Object opts = opts_value.IsUndefined() ? Napi::Object::New(info.Env()) : to_object(opts_value, "options");
    trans_a_ = option_bool(opts, "transA", false);
    trans_b_ = option_bool(opts, "transB", false);
    alpha_ = static_cast<float>(option_number(opts, "alpha", 1.0));
    accumulate_ = option_bool(opts, "accumulate", false);

    for (auto* x : {&a_, &b_}) {
      const char* name = x == &a_ ? "a" : "b";
      expect_ndim(**x, 2, name);
      expect_dtype(**x, {DType::F32, DType::BF16}, name);
    }
    m_ = trans_a_ ? a_->dim(1) : a_->dim(0);
    k_ = trans_a_ ? a_->dim(0) : a_->dim(1);
    const int64_t kb = trans_b_ ? b_->dim(1) : b_->dim(0);
    n_ = trans_b_ ? b_->dim(0) : b_->dim(1);
    PEFT_CHECK(kb == k_, ErrorCode::Shape,
               "Expected the inner dimensions to match for matmul but op(a) is " + shape_to_string({m_, k_}) +
                   " and op(b) is " + shape_to_string({kb, n_}));
    out_ = to_tensor_or_null(out_value, "out");
    if (out_) {
      expect_dtype(*out_, {DType::F32}, "out");
      expect_shape(*out_, {m_, n_}, "out");
      PEFT_CHECK(out_->storage() != a_->storage() && out_->storage() != b_->storage(), ErrorCode::Argument,
                 "Expected an out tensor distinct from a and b but received one that shares their memory");
      out_ref_ = Napi::Persistent(out_value.As<Napi::Object>());
    } else {
      PEFT_CHECK(!accumulate_, ErrorCode::Argument, "Expected an out tensor when accumulate is true but received none");
      out_ = std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, Shape{m_, n_}));
    }
    writes(out_);
  }

  void execute() override {
    kernels::gemm(m_, n_, k_, kernels::MatrixRef{a_->data(), a_->dtype(), a_->dim(1), trans_a_},
                  kernels::MatrixRef{b_->data(), b_->dtype(), b_->dim(1), trans_b_}, out_->data_as<float>(), n_, alpha_,
                  accumulate_);
  }

  Napi::Value result(Napi::Env env) override {
    return out_ref_.IsEmpty() ? Napi::Value(wrap_tensor(env, out_)) : Napi::Value(out_ref_.Value());
  }

 private:
  std::shared_ptr<Tensor> a_, b_, out_;
  Napi::ObjectReference out_ref_;
  bool trans_a_, trans_b_, accumulate_;
  float alpha_;
  int64_t m_, n_, k_;
};

// Shapes shared by the low-rank forward and backward: x [m, k], w [n, k], a [r, k], b [n, r].
kernels::LowRankShape check_lowrank(const Tensor& x, const Tensor& w, const Tensor& a, const Tensor& b) {
  expect_ndim(x, 2, "x");
  expect_ndim(w, 2, "weight");
  expect_ndim(a, 2, "lora_A");
  expect_ndim(b, 2, "lora_B");
  expect_dtype(x, {DType::F32, DType::BF16}, "x");
  expect_dtype(w, {DType::F32, DType::BF16}, "weight");
  expect_dtype(a, {DType::F32}, "lora_A");
  expect_dtype(b, {DType::F32}, "lora_B");
  kernels::LowRankShape s{x.dim(0), w.dim(0), x.dim(1), a.dim(0)};
  expect_shape(w, {s.n, s.k}, "weight");
  expect_shape(a, {s.r, s.k}, "lora_A");
  expect_shape(b, {s.n, s.r}, "lora_B");
  PEFT_CHECK(s.r >= 1, ErrorCode::Shape, "Expected a rank of at least 1 for lora_A but received shape " +
                                             shape_to_string(a.shape()));
  return s;
}

// lowrankForward(x, weight, loraA, loraB, scale) -> { y: [m, n], xa: [m, r] }
class LowRankForwardPlan : public OpPlan {
 public:
  explicit LowRankForwardPlan(const Napi::CallbackInfo& info) {
    x_ = reads(to_tensor(arg(info, 0), "x"));
    w_ = reads(to_tensor(arg(info, 1), "weight"));
    a_ = reads(to_tensor(arg(info, 2), "lora_A"));
    b_ = reads(to_tensor(arg(info, 3), "lora_B"));
    scale_ = static_cast<float>(to_number(arg(info, 4), "scale"));
    s_ = check_lowrank(*x_, *w_, *a_, *b_);
    y_ = writes(std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, Shape{s_.m, s_.n})));
    xa_ = writes(std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, Shape{s_.m, s_.r})));
  }

  void execute() override {
    kernels::lowrank_forward(s_, x_->data(), x_->dtype(), w_->data(), w_->dtype(), a_->data_as<float>(),
                             b_->data_as<float>(), scale_, y_->data_as<float>(), xa_->data_as<float>());
  }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("y", wrap_tensor(env, y_));
    out.Set("xa", wrap_tensor(env, xa_));
    return out;
  }

 private:
  std::shared_ptr<Tensor> x_, w_, a_, b_, y_, xa_;
  kernels::LowRankShape s_;
  float scale_;
};

// lowrankBackward(dy, x, xa, weight, loraA, loraB, scale, { needDx, gradA, gradB, accumulate })
//   -> { dx: [m, k] | null, gradA: [r, k], gradB: [n, r] }
class LowRankBackwardPlan : public OpPlan {
 public:
  explicit LowRankBackwardPlan(const Napi::CallbackInfo& info) {
    dy_ = reads(to_tensor(arg(info, 0), "dy"));
    x_ = reads(to_tensor(arg(info, 1), "x"));
    xa_ = reads(to_tensor(arg(info, 2), "xa"));
    w_ = reads(to_tensor(arg(info, 3), "weight"));
    a_ = reads(to_tensor(arg(info, 4), "lora_A"));
    b_ = reads(to_tensor(arg(info, 5), "lora_B"));
    scale_ = static_cast<float>(to_number(arg(info, 6), "scale"));
    Napi::Value opts_value = arg(info, 7);
    Napi::Object opts = opts_value.IsUndefined() ? Napi::Object::New(info.Env()) : to_object(opts_value, "options");
    const bool need_dx = option_bool(opts, "needDx", true);
    accumulate_ = option_bool(opts, "accumulate", false);
    s_ = check_lowrank(*x_, *w_, *a_, *b_);
    expect_dtype(*dy_, {DType::F32}, "dy");
    expect_shape(*dy_, {s_.m, s_.n}, "dy");
    expect_dtype(*xa_, {DType::F32}, "xa");
    expect_shape(*xa_, {s_.m, s_.r}, "xa");

    da_ = grad_output(opts, "gradA", {s_.r, s_.k}, da_ref_);
    db_ = grad_output(opts, "gradB", {s_.n, s_.r}, db_ref_);
    PEFT_CHECK(!accumulate_ || (!da_ref_.IsEmpty() && !db_ref_.IsEmpty()), ErrorCode::Argument,
               "Expected gradA and gradB tensors when accumulate is true but received none");
    if (need_dx) dx_ = writes(std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, Shape{s_.m, s_.k})));
    workspace_ = std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, Shape{s_.m, s_.r}));
  }

  void execute() override {
    kernels::lowrank_backward(s_, dy_->data_as<float>(), x_->data(), x_->dtype(), xa_->data_as<float>(), w_->data(),
                              w_->dtype(), a_->data_as<float>(), b_->data_as<float>(), scale_,
                              dx_ ? dx_->data_as<float>() : nullptr, da_->data_as<float>(), db_->data_as<float>(),
                              workspace_->data_as<float>(), accumulate_);
  }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("dx", dx_ ? Napi::Value(wrap_tensor(env, dx_)) : env.Null());
    out.Set("gradA", da_ref_.IsEmpty() ? Napi::Value(wrap_tensor(env, da_)) : Napi::Value(da_ref_.Value()));
    out.Set("gradB", db_ref_.IsEmpty() ? Napi::Value(wrap_tensor(env, db_)) : Napi::Value(db_ref_.Value()));
    return out;
  }

 private:
  std::shared_ptr<Tensor> grad_output(const Napi::Object& opts, const char* key, const Shape& shape,
                                      Napi::ObjectReference& ref) {
    Napi::Value v = opts.Get(key);
    std::shared_ptr<Tensor> t = to_tensor_or_null(v, std::string("option ") + key);
    if (t) {
      expect_dtype(*t, {DType::F32}, key);
      expect_shape(*t, shape, key);
      ref = Napi::Persistent(v.As<Napi::Object>());
    } else {
      t = std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, shape));
    }
    return writes(t);
  }

  std::shared_ptr<Tensor> dy_, x_, xa_, w_, a_, b_, dx_, da_, db_, workspace_;
  Napi::ObjectReference da_ref_, db_ref_;
  kernels::LowRankShape s_;
  float scale_;
  bool accumulate_;
};

}  // namespace

void register_gemm_ops(Napi::Env env, Napi::Object exports) {
  export_op<MatmulPlan>(env, exports, "matmul");
  export_op<LowRankForwardPlan>(env, exports, "lowrankForward");
  export_op<LowRankBackwardPlan>(env, exports, "lowrankBackward");
}

}  // namespace peft::binding
