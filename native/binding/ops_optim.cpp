// Fused optimizer steps over lists of tensors, and global gradient-norm clipping; sync and async.
#include <napi.h>

#include <cmath>
#include <set>

#include "binding/args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "core/profile.h"
#include "kernels/optim.h"

namespace peft::binding {

namespace {

using TensorList = std::vector<std::shared_ptr<Tensor>>;

// Checks a list of f32 tensors of the same shapes as params (null entries allowed when optional).
void check_like(const TensorList& list, const TensorList& params, const std::string& what) {
  PEFT_CHECK(list.size() == params.size(), ErrorCode::Argument,
             "Expected " + std::to_string(params.size()) + " tensors in " + what + " (one per parameter) but received " +
                 std::to_string(list.size()));
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string name = what + "[" + std::to_string(i) + "]";
    expect_dtype(*list[i], {DType::F32}, name);
    expect_shape(*list[i], params[i]->shape(), name);
  }
}

// f32 tensors, each once: a repeated one would be updated (or scaled) twice.
void check_params(const TensorList& params, const std::string& what = "params") {
  std::set<Storage*> seen;
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string name = what + "[" + std::to_string(i) + "]";
    expect_dtype(*params[i], {DType::F32}, name);
    PEFT_CHECK(seen.insert(params[i]->storage().get()).second, ErrorCode::Argument,
               "Expected distinct tensors for " + what + " but received " + name + " repeating an earlier one");
  }
}

float hyper(const Napi::Object& o, const char* key, double fallback, double lo, double hi) {
  const double v = option_number(o, key, fallback);
  PEFT_CHECK(v >= lo && v <= hi, ErrorCode::Range,
             "Expected a number in [" + number_text(lo) + ", " + number_text(hi) + "] for option " + key +
                 " but received " + number_text(v));
  return static_cast<float>(v);
}

// adamw(params, grads, expAvg, expAvgSq, { lr, beta1, beta2, eps, weightDecay, step })
class AdamWPlan : public OpPlan {
 public:
  explicit AdamWPlan(const Napi::CallbackInfo& info) {
    params_ = to_tensor_list(arg(info, 0), "params");
    grads_ = to_tensor_list(arg(info, 1), "grads");
    m_ = to_tensor_list(arg(info, 2), "expAvg");
    v_ = to_tensor_list(arg(info, 3), "expAvgSq");
    Napi::Object o = to_object(arg(info, 4), "options");
    check_params(params_);
    check_like(grads_, params_, "grads");
    check_like(m_, params_, "expAvg");
    check_like(v_, params_, "expAvgSq");
    h_.lr = hyper(o, "lr", 1e-3, 0, 1e6);
    h_.beta1 = hyper(o, "beta1", 0.9, 0, 0.999999999);
    h_.beta2 = hyper(o, "beta2", 0.999, 0, 0.999999999);
    h_.eps = hyper(o, "eps", 1e-8, 0, 1);
    h_.weight_decay = hyper(o, "weightDecay", 0.01, 0, 1e6);
    Napi::Value step = o.Get("step");
    PEFT_CHECK(!step.IsUndefined(), ErrorCode::Argument, "Expected a step number (1 on the first step) for option step but received undefined");
    h_.step = to_int(step, "option step");
    PEFT_CHECK(h_.step >= 1, ErrorCode::Range, "Expected step >= 1 but received " + std::to_string(h_.step));
    for (size_t i = 0; i < params_.size(); ++i) {
      writes(params_[i]);
      reads(grads_[i]);
      writes(m_[i]);
      writes(v_[i]);
      slots_.push_back({params_[i]->data_as<float>(), grads_[i]->data_as<float>(), m_[i]->data_as<float>(),
                        v_[i]->data_as<float>(), params_[i]->numel()});
    }
  }
  void execute() override {
    PEFT_PROFILE_SCOPE(Optimizer);
    kernels::adamw_step(slots_.data(), static_cast<int>(slots_.size()), h_);
  }
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }

 private:
  TensorList params_, grads_, m_, v_;
  std::vector<kernels::ParamSlot> slots_;
  kernels::AdamWHyper h_{};
};

// sgd(params, grads, momentumBuffers | null, { lr, momentum, dampening, weightDecay, nesterov, step })
class SgdPlan : public OpPlan {
 public:
  explicit SgdPlan(const Napi::CallbackInfo& info) {
    params_ = to_tensor_list(arg(info, 0), "params");
    grads_ = to_tensor_list(arg(info, 1), "grads");
    Napi::Value bufs = arg(info, 2);
    Napi::Object o = to_object(arg(info, 3), "options");
    check_params(params_);
    check_like(grads_, params_, "grads");
    h_.lr = hyper(o, "lr", 1e-3, 0, 1e6);
    h_.momentum = hyper(o, "momentum", 0, 0, 1);
    h_.dampening = hyper(o, "dampening", 0, 0, 1);
    h_.weight_decay = hyper(o, "weightDecay", 0, 0, 1e6);
    h_.nesterov = option_bool(o, "nesterov", false);
    Napi::Value step_value = o.Get("step");
    const int64_t step = step_value.IsUndefined() ? 1 : to_int(step_value, "option step");
    PEFT_CHECK(step >= 1, ErrorCode::Range, "Expected step >= 1 but received " + std::to_string(step));
    h_.first_step = step == 1;
    PEFT_CHECK(!h_.nesterov || (h_.momentum > 0 && h_.dampening == 0), ErrorCode::Config,
               "Expected momentum > 0 and dampening = 0 for Nesterov momentum but received momentum " +
                   std::to_string(h_.momentum) + " and dampening " + std::to_string(h_.dampening));
    if (h_.momentum != 0) {
      PEFT_CHECK(!bufs.IsNull() && !bufs.IsUndefined(), ErrorCode::Argument,
                 "Expected momentum buffers (one per parameter) when momentum > 0 but received " + describe(bufs));
      bufs_ = to_tensor_list(bufs, "momentumBuffers");
      check_like(bufs_, params_, "momentumBuffers");
    }
    for (size_t i = 0; i < params_.size(); ++i) {
      writes(params_[i]);
      reads(grads_[i]);
      float* buf = bufs_.empty() ? nullptr : writes(bufs_[i])->data_as<float>();
      slots_.push_back({params_[i]->data_as<float>(), grads_[i]->data_as<float>(), buf, nullptr, params_[i]->numel()});
    }
  }
  void execute() override {
    PEFT_PROFILE_SCOPE(Optimizer);
    kernels::sgd_step(slots_.data(), static_cast<int>(slots_.size()), h_);
  }
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }

 private:
  TensorList params_, grads_, bufs_;
  std::vector<kernels::ParamSlot> slots_;
  kernels::SgdHyper h_{};
};

// clipGradNorm(grads, maxNorm) -> total norm before clipping
class ClipGradNormPlan : public OpPlan {
 public:
  explicit ClipGradNormPlan(const Napi::CallbackInfo& info) {
    grads_ = to_tensor_list(arg(info, 0), "grads");
    max_norm_ = to_number(arg(info, 1), "maxNorm");
    PEFT_CHECK(max_norm_ > 0, ErrorCode::Range, "Expected maxNorm > 0 but received " + std::to_string(max_norm_));
    check_params(grads_, "grads");
    for (size_t i = 0; i < grads_.size(); ++i) {
      writes(grads_[i]);
      ptrs_.push_back(grads_[i]->data_as<float>());
      sizes_.push_back(grads_[i]->numel());
    }
  }
  void execute() override { norm_ = kernels::clip_grad_norm(ptrs_.data(), sizes_.data(), static_cast<int>(ptrs_.size()), max_norm_); }
  Napi::Value result(Napi::Env env) override { return Napi::Number::New(env, norm_); }

 private:
  TensorList grads_;
  std::vector<float*> ptrs_;
  std::vector<int64_t> sizes_;
  double max_norm_ = 0;
  double norm_ = 0;
};

}  // namespace

void register_optim_ops(Napi::Env env, Napi::Object exports) {
  export_op<AdamWPlan>(env, exports, "adamw");
  export_op<SgdPlan>(env, exports, "sgd");
  export_op<ClipGradNormPlan>(env, exports, "clipGradNorm");
}

}  // namespace peft::binding
