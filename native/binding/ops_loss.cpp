// Softmax cross-entropy with ignore_index, loss and (optionally) dlogits, sync and async.
#include <napi.h>

#include <limits>

#include "binding/args.h"
#include "binding/layer_args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/loss.h"

namespace peft::binding {

namespace {

// crossEntropy(logits, labels, { ignoreIndex, normalizer, grad, dlogits }) -> { loss, count, dlogits | null }
//   logits [rows, vocab] f32; labels [rows] i32; dlogits: a given [rows, vocab] f32 tensor (may be logits)
class CrossEntropyPlan : public OpPlan {
 public:
  explicit CrossEntropyPlan(const Napi::CallbackInfo& info) {
    logits_ = to_tensor(arg(info, 0), "logits");
    labels_ = reads(to_tensor(arg(info, 1), "labels"));
    Napi::Object o = options_at(info, 2);
    expect_dtype(*logits_, {DType::F32}, "logits");
    expect_ndim(*logits_, 2, "logits");
    rows_ = logits_->dim(0);
    vocab_ = logits_->dim(1);
    PEFT_CHECK(vocab_ >= 1, ErrorCode::Shape, "Expected at least one class for logits but received shape " +
                                                  shape_to_string(logits_->shape()));
    expect_dtype(*labels_, {DType::I32}, "labels");
    expect_shape(*labels_, {rows_}, "labels");
    const double ignore = option_number(o, "ignoreIndex", -100);
    PEFT_CHECK(ignore == static_cast<double>(static_cast<int32_t>(ignore)), ErrorCode::Range,
               "Expected a 32-bit integer for option ignoreIndex but received " + number_text(ignore));
    ignore_ = static_cast<int32_t>(ignore);
    normalizer_ = option_number(o, "normalizer", 0);
    PEFT_CHECK(normalizer_ >= 0, ErrorCode::Range,
               "Expected a number >= 0 for option normalizer but received " + number_text(normalizer_));
    std::shared_ptr<Tensor> given = to_tensor_or_null(o.Get("dlogits"), "option dlogits");
    if (given) {
      expect_dtype(*given, {DType::F32}, "option dlogits");
      expect_shape(*given, logits_->shape(), "option dlogits");
      PEFT_CHECK(given->data() == logits_->data() || given->storage() != logits_->storage(), ErrorCode::Argument,
                 "Expected logits itself or a tensor distinct from it for option dlogits but received one that "
                 "overlaps it");
      expect_distinct(*given, {labels_.get()}, "option dlogits");
      dlogits_ = writes(given);
      dlogits_ref_ = Napi::Persistent(o.Get("dlogits").As<Napi::Object>());
    } else if (option_bool(o, "grad", false)) {
      dlogits_ = writes(new_f32(logits_->shape()));
    }
    reads(logits_);
    row_loss_ = new_f32({rows_});
  }
  void execute() override {
    result_ = kernels::cross_entropy(rows_, vocab_, logits_->data_as<float>(), labels_->data_as<int32_t>(), ignore_,
                                     normalizer_, row_loss_->data_as<float>(),
                                     dlogits_ ? dlogits_->data_as<float>() : nullptr);
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    // PyTorch's mean over zero elements: NaN when every row is ignored (and no normalizer was given).
    const double norm = normalizer_ > 0 ? normalizer_ : static_cast<double>(result_.count);
    out.Set("loss", Napi::Number::New(env, norm > 0 ? result_.loss_sum / norm : std::numeric_limits<double>::quiet_NaN()));
    out.Set("count", Napi::Number::New(env, static_cast<double>(result_.count)));
    if (!dlogits_) {
      out.Set("dlogits", env.Null());
    } else {
      out.Set("dlogits", dlogits_ref_.IsEmpty() ? Napi::Value(wrap_tensor(env, dlogits_)) : Napi::Value(dlogits_ref_.Value()));
    }
    return out;
  }

 private:
  std::shared_ptr<Tensor> logits_, labels_, dlogits_, row_loss_;
  Napi::ObjectReference dlogits_ref_;
  int64_t rows_ = 0, vocab_ = 0;
  int32_t ignore_ = -100;
  double normalizer_ = 0;
  kernels::CrossEntropyResult result_{0, 0};
};

}  // namespace

void register_loss_ops(Napi::Env env, Napi::Object exports) {
  export_op<CrossEntropyPlan>(env, exports, "crossEntropy");
}

}  // namespace peft::binding
