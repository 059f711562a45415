// Rotary position embedding (HF rotate_half layout) and its inverse, sync and async.
#include <napi.h>

#include <vector>

#include "binding/args.h"
#include "binding/layer_args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/rope.h"

namespace peft::binding {

namespace {

// rope(x, positions, { theta, freqScale, inverse, inPlace }) -> y [batch, seq, heads, head_dim]
class RopePlan : public OpPlan {
 public:
  explicit RopePlan(const Napi::CallbackInfo& info) {
    x_ = to_tensor(arg(info, 0), "x");
    pos_ = reads(to_tensor(arg(info, 1), "positions"));
    Napi::Object o = options_at(info, 2);
    expect_dtype(*x_, {DType::F32}, "x");
    expect_ndim(*x_, 4, "x");
    s_ = {x_->dim(0), x_->dim(1), x_->dim(2), x_->dim(3)};
    PEFT_CHECK(s_.head_dim % 2 == 0 && s_.head_dim <= 2048, ErrorCode::Shape,
               "Expected an even head_dim of at most 2048 for x but received shape " + shape_to_string(x_->shape()));
    expect_dtype(*pos_, {DType::I32}, "positions");
    expect_shape(*pos_, {s_.batch, s_.seq}, "positions");
    const double theta = option_number(o, "theta", 10000.0);
    PEFT_CHECK(theta > 1, ErrorCode::Range, "Expected a number > 1 for option theta but received " + number_text(theta));
    freq_scale_ = reads(to_tensor_or_null(o.Get("freqScale"), "option freqScale"));
    if (freq_scale_) {
      expect_dtype(*freq_scale_, {DType::F32}, "option freqScale");
      expect_shape(*freq_scale_, {s_.head_dim / 2}, "option freqScale");
    }
    inverse_ = option_bool(o, "inverse", false);
    if (option_bool(o, "inPlace", false)) {
      y_ = writes(x_);
      y_ref_ = Napi::Persistent(arg(info, 0).As<Napi::Object>());
    } else {
      reads(x_);
      y_ = writes(new_f32(x_->shape()));
    }
    inv_freq_.resize(static_cast<size_t>(s_.head_dim / 2));
    kernels::rope_inv_freq(s_.head_dim, theta, freq_scale_ ? freq_scale_->data_as<float>() : nullptr, inv_freq_.data());
  }
  void execute() override {
    kernels::rope_apply(s_, x_->data_as<float>(), pos_->data_as<int32_t>(), inv_freq_.data(), inverse_,
                        y_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override {
    return y_ref_.IsEmpty() ? Napi::Value(wrap_tensor(env, y_)) : Napi::Value(y_ref_.Value());
  }

 private:
  std::shared_ptr<Tensor> x_, pos_, freq_scale_, y_;
  Napi::ObjectReference y_ref_;
  kernels::RopeShape s_{};
  std::vector<double> inv_freq_;
  bool inverse_ = false;
};

}  // namespace

void register_rope_ops(Napi::Env env, Napi::Object exports) { export_op<RopePlan>(env, exports, "rope"); }

}  // namespace peft::binding
