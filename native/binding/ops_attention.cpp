// ops.attention / ops.attentionBackward, sync and async.
#include <napi.h>

#include <cmath>

#include "binding/args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/attention.h"

namespace peft::binding {

namespace {

// Shapes and mask shared by forward and backward: q [B, T, Hq, D], k and v [B, S, Hkv, D],
// keyMask u8 [B, S].
struct AttentionArgs {
  kernels::AttentionShape shape{};
  bool causal = true;
  float scale = 1;
  std::shared_ptr<Tensor> key_mask;

  void read(const Tensor& q, const Tensor& k, const Tensor& v, const Napi::Value& opts_value, Napi::Env env) {
    for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) {
      expect_ndim(*t, 4, name);
      expect_dtype(*t, {DType::F32}, name);
    }
    shape = {q.dim(0), q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3)};
    expect_shape(k, {shape.batch, shape.kv_len, shape.kv_heads, shape.head_dim}, "k");
    expect_shape(v, k.shape(), "v");
    PEFT_CHECK(shape.q_heads % shape.kv_heads == 0, ErrorCode::Shape,
               "Expected query heads (" + std::to_string(shape.q_heads) + ") to be a multiple of key/value heads (" +
                   std::to_string(shape.kv_heads) + ")");
    PEFT_CHECK(shape.kv_len >= shape.q_len, ErrorCode::Shape,
               "Expected at least as many key positions as query positions but received " +
                   std::to_string(shape.kv_len) + " keys for " + std::to_string(shape.q_len) + " queries");
    Napi::Object o = opts_value.IsUndefined() ? Napi::Object::New(env) : to_object(opts_value, "options");
    causal = option_bool(o, "causal", true);
    scale = static_cast<float>(option_number(o, "scale", 1.0 / std::sqrt(static_cast<double>(shape.head_dim))));
    key_mask = to_tensor_or_null(o.Get("keyMask"), "option keyMask");
    if (key_mask) {
      expect_dtype(*key_mask, {DType::U8}, "keyMask");
      expect_shape(*key_mask, {shape.batch, shape.kv_len}, "keyMask");
    }
  }

  kernels::AttentionMask mask() const { return {causal, key_mask ? key_mask->data_as<uint8_t>() : nullptr}; }
};

std::shared_ptr<Tensor> new_f32(const Shape& shape) {
  return std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, shape));
}

// attention(q, k, v, { causal, scale, keyMask }) -> { out: [B, T, Hq, D], lse: [B, Hq, T] }
class AttentionPlan : public OpPlan {
 public:
  explicit AttentionPlan(const Napi::CallbackInfo& info) {
    q_ = reads(to_tensor(arg(info, 0), "q"));
    k_ = reads(to_tensor(arg(info, 1), "k"));
    v_ = reads(to_tensor(arg(info, 2), "v"));
    a_.read(*q_, *k_, *v_, arg(info, 3), info.Env());
    reads(a_.key_mask);
    out_ = writes(new_f32(q_->shape()));
    lse_ = writes(new_f32({a_.shape.batch, a_.shape.q_heads, a_.shape.q_len}));
  }
  void execute() override {
    kernels::attention_forward(a_.shape, a_.mask(), a_.scale, q_->data_as<float>(), k_->data_as<float>(),
                               v_->data_as<float>(), out_->data_as<float>(), lse_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("out", wrap_tensor(env, out_));
    o.Set("lse", wrap_tensor(env, lse_));
    return o;
  }

 private:
  std::shared_ptr<Tensor> q_, k_, v_, out_, lse_;
  AttentionArgs a_;
};

// attentionBackward(dout, q, k, v, out, lse, options) -> { dq, dk, dv }
class AttentionBackwardPlan : public OpPlan {
 public:
  explicit AttentionBackwardPlan(const Napi::CallbackInfo& info) {
    dout_ = reads(to_tensor(arg(info, 0), "dout"));
    q_ = reads(to_tensor(arg(info, 1), "q"));
    k_ = reads(to_tensor(arg(info, 2), "k"));
    v_ = reads(to_tensor(arg(info, 3), "v"));
    out_ = reads(to_tensor(arg(info, 4), "out"));
    lse_ = reads(to_tensor(arg(info, 5), "lse"));
    a_.read(*q_, *k_, *v_, arg(info, 6), info.Env());
    reads(a_.key_mask);
    for (auto [t, name] : {std::pair{&dout_, "dout"}, {&out_, "out"}}) {
      expect_dtype(**t, {DType::F32}, name);
      expect_shape(**t, q_->shape(), name);
    }
    expect_dtype(*lse_, {DType::F32}, "lse");
    expect_shape(*lse_, {a_.shape.batch, a_.shape.q_heads, a_.shape.q_len}, "lse");
    dq_ = writes(new_f32(q_->shape()));
    dk_ = writes(new_f32(k_->shape()));
    dv_ = writes(new_f32(v_->shape()));
  }
  void execute() override {
    kernels::attention_backward(a_.shape, a_.mask(), a_.scale, q_->data_as<float>(), k_->data_as<float>(),
                                v_->data_as<float>(), out_->data_as<float>(), dout_->data_as<float>(),
                                lse_->data_as<float>(), dq_->data_as<float>(), dk_->data_as<float>(),
                                dv_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("dq", wrap_tensor(env, dq_));
    o.Set("dk", wrap_tensor(env, dk_));
    o.Set("dv", wrap_tensor(env, dv_));
    return o;
  }

 private:
  std::shared_ptr<Tensor> dout_, q_, k_, v_, out_, lse_, dq_, dk_, dv_;
  AttentionArgs a_;
};

}  // namespace

void register_attention_ops(Napi::Env env, Napi::Object exports) {
  export_op<AttentionPlan>(env, exports, "attention");
  export_op<AttentionBackwardPlan>(env, exports, "attentionBackward");
}

}  // namespace peft::binding
