// findNonFinite: counts NaN and infinities in a list of tensors, sync and async.
#include <napi.h>

#include "binding/args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/finite.h"

namespace peft::binding {

namespace {

// findNonFinite(tensors) -> { counts, firsts, values }: per tensor, how many elements are NaN or
// ±infinity, the flat index of the first (-1 for none) and its value. Integer tensors count 0.
class FindNonFinitePlan : public OpPlan {
 public:
  explicit FindNonFinitePlan(const Napi::CallbackInfo& info) {
    tensors_ = to_tensor_list(arg(info, 0), "tensors");
    for (size_t i = 0; i < tensors_.size(); ++i) {
      PEFT_CHECK(tensors_[i]->is_contiguous(), ErrorCode::Argument,
                 "Expected contiguous tensors but tensors[" + std::to_string(i) + "] is a strided view");
      reads(tensors_[i]);
    }
    found_.resize(tensors_.size());
  }
  void execute() override {
    for (size_t i = 0; i < tensors_.size(); ++i)
      found_[i] = kernels::find_nonfinite(tensors_[i]->data(), tensors_[i]->dtype(), tensors_[i]->numel());
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Array counts = Napi::Array::New(env, found_.size());
    Napi::Array firsts = Napi::Array::New(env, found_.size());
    Napi::Array values = Napi::Array::New(env, found_.size());
    for (size_t i = 0; i < found_.size(); ++i) {
      counts.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(found_[i].count)));
      firsts.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(found_[i].first)));
      values.Set(static_cast<uint32_t>(i), Napi::Number::New(env, found_[i].value));
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("counts", counts);
    out.Set("firsts", firsts);
    out.Set("values", values);
    return out;
  }

 private:
  std::vector<std::shared_ptr<Tensor>> tensors_;
  std::vector<kernels::NonFinite> found_;
};

}  // namespace

void register_finite_ops(Napi::Env env, Napi::Object exports) {
  export_op<FindNonFinitePlan>(env, exports, "findNonFinite");
}

}  // namespace peft::binding
