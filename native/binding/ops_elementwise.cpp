// In-place scaling of f32 tensors and copying into one, sync and async: what the Trainer needs on
// storage the model and the optimizer share (gradient buffers, parameters).
#include <napi.h>

#include <cmath>
#include <set>

#include "binding/args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/elementwise.h"

namespace peft::binding {

namespace {

// scale(tensors: f32[], factor: finite number): each tensor *= factor, in place.
class ScalePlan : public OpPlan {
 public:
  explicit ScalePlan(const Napi::CallbackInfo& info) {
    tensors_ = to_tensor_list(arg(info, 0), "tensors");
    factor_ = to_number(arg(info, 1), "factor");
    PEFT_CHECK(std::isfinite(factor_), ErrorCode::Argument,
               "Expected a finite number for factor but received " + number_text(factor_));
    std::set<Storage*> seen;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const std::string name = "tensors[" + std::to_string(i) + "]";
      expect_dtype(*tensors_[i], {DType::F32}, name);
      PEFT_CHECK(tensors_[i]->is_contiguous(), ErrorCode::Argument, name + " is not contiguous");
      PEFT_CHECK(seen.insert(tensors_[i]->storage().get()).second, ErrorCode::Argument,
                 "Expected distinct tensors for tensors but received " + name + " repeating an earlier one");
      writes(tensors_[i]);
    }
  }
  void execute() override {
    for (const auto& t : tensors_) kernels::scale_values(t->numel(), static_cast<float>(factor_), t->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }

 private:
  std::vector<std::shared_ptr<Tensor>> tensors_;
  double factor_ = 1;
};

// copy(target: f32, source: f32 with as many values): target ← source, in place (its storage stays).
class CopyPlan : public OpPlan {
 public:
  explicit CopyPlan(const Napi::CallbackInfo& info) {
    target_ = to_tensor(arg(info, 0), "target");
    source_ = to_tensor(arg(info, 1), "source");
    expect_dtype(*target_, {DType::F32}, "target");
    expect_dtype(*source_, {DType::F32}, "source");
    PEFT_CHECK(target_->is_contiguous() && source_->is_contiguous(), ErrorCode::Argument,
               "Expected contiguous tensors for target and source");
    PEFT_CHECK(target_->numel() == source_->numel(), ErrorCode::Shape,
               "Expected " + std::to_string(target_->numel()) + " values in source (as many as target) but received " +
                   std::to_string(source_->numel()));
    PEFT_CHECK(target_->storage() != source_->storage(), ErrorCode::Argument,
               "Expected a source that does not share the target's storage");
    writes(target_);
    reads(source_);
  }
  void execute() override { kernels::copy_values(target_->numel(), source_->data_as<float>(), target_->data_as<float>()); }
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }

 private:
  std::shared_ptr<Tensor> target_, source_;
};

}  // namespace

void register_elementwise_ops(Napi::Env env, Napi::Object exports) {
  export_op<ScalePlan>(env, exports, "scale");
  export_op<CopyPlan>(env, exports, "copy");
}

}  // namespace peft::binding
