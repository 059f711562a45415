// loraBatchForward(x [m, k] f32, adapters [{ a: [r, k], b: [n, r], scale }], rowAdapter i32 [m], y [m, n] f32)
//   -> y, after y[i] += scale · (x[i]·Aᵀ)·Bᵀ with adapter rowAdapter[i] (-1: none) for every row:
// kernels/lora_batch.h, the rows grouped into runs of one adapter.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "binding/args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/lora_batch.h"

namespace peft::binding {

namespace {

class LoraBatchForwardPlan : public OpPlan {
 public:
  explicit LoraBatchForwardPlan(const Napi::CallbackInfo& info) {
    x_ = reads(to_tensor(arg(info, 0), "x"));
    expect_dtype(*x_, {DType::F32}, "x");
    expect_ndim(*x_, 2, "x");
    PEFT_CHECK(x_->is_contiguous(), ErrorCode::Shape, "Expected a contiguous x");
    m_ = x_->dim(0);
    k_ = x_->dim(1);
    rows_ = reads(to_tensor(arg(info, 2), "rowAdapter"));
    expect_dtype(*rows_, {DType::I32}, "rowAdapter");
    PEFT_CHECK(rows_->numel() == m_ && rows_->is_contiguous(), ErrorCode::Shape,
               "Expected one adapter index per row of x (" + std::to_string(m_) + ") for rowAdapter but received shape " +
                   shape_to_string(rows_->shape()));
    y_ = writes(to_tensor(arg(info, 3), "y"));
    expect_dtype(*y_, {DType::F32}, "y");
    expect_ndim(*y_, 2, "y");
    PEFT_CHECK(y_->dim(0) == m_ && y_->is_contiguous(), ErrorCode::Shape,
               "Expected y of " + std::to_string(m_) + " rows (those of x) but received shape " + shape_to_string(y_->shape()));
    n_ = y_->dim(1);
    Napi::Value list = arg(info, 1);
    PEFT_CHECK(list.IsArray(), ErrorCode::Argument, "Expected an array of adapters but received " + describe(list));
    Napi::Array arr = list.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      const std::string what = "adapters[" + std::to_string(i) + "]";
      Napi::Object o = to_object(arr.Get(i), what);
      auto a = reads(to_tensor(o.Get("a"), what + ".a"));
      auto b = reads(to_tensor(o.Get("b"), what + ".b"));
      expect_dtype(*a, {DType::F32}, what + ".a");
      expect_dtype(*b, {DType::F32}, what + ".b");
      expect_ndim(*a, 2, what + ".a");
      const int64_t r = a->dim(0);
      PEFT_CHECK(a->dim(1) == k_ && a->is_contiguous(), ErrorCode::Shape,
                 "Expected " + what + ".a of shape [r, " + std::to_string(k_) + "] but received " + shape_to_string(a->shape()));
      expect_shape(*b, {n_, r}, what + ".b");
      PEFT_CHECK(b->is_contiguous(), ErrorCode::Shape, "Expected a contiguous " + what + ".b");
      const double scale = to_number(o.Get("scale"), what + ".scale");
      adapters_.push_back({a->data_as<float>(), b->data_as<float>(), r, static_cast<float>(scale)});
      held_.push_back(a);
      held_.push_back(b);
    }
  }

  void execute() override {
    // Runs of consecutive rows with one adapter: the kernel's segments.
    const int32_t* idx = rows_->data_as<int32_t>();
    std::vector<kernels::LoraSegment> segments;
    for (int64_t i = 0; i < m_;) {
      int64_t j = i + 1;
      while (j < m_ && idx[j] == idx[i]) ++j;
      segments.push_back({i, j - i, idx[i]});
      i = j;
    }
    kernels::lora_batch_forward(m_, n_, k_, x_->data_as<float>(), k_, adapters_.data(), static_cast<int64_t>(adapters_.size()),
                                segments.data(), static_cast<int64_t>(segments.size()), y_->data_as<float>(), n_);
  }

  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, y_); }

 private:
  std::shared_ptr<Tensor> x_, rows_, y_;
  std::vector<std::shared_ptr<Tensor>> held_;
  std::vector<kernels::LoraAdapterRef> adapters_;
  int64_t m_ = 0, n_ = 0, k_ = 0;
};

}  // namespace

void register_lora_batch_ops(Napi::Env env, Napi::Object exports) {
  export_op<LoraBatchForwardPlan>(env, exports, "loraBatchForward");
}

}  // namespace peft::binding
