// Embedding gather and its scatter-add backward, sync and async.
#include <napi.h>

#include "binding/args.h"
#include "binding/layer_args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/embedding.h"

namespace peft::binding {

namespace {

// embeddingForward(ids, table) -> out [...ids.shape, dim]; ids i32, table [vocab, dim] f32
class EmbeddingForwardPlan : public OpPlan {
 public:
  explicit EmbeddingForwardPlan(const Napi::CallbackInfo& info) {
    ids_ = reads(to_tensor(arg(info, 0), "ids"));
    table_ = reads(to_tensor(arg(info, 1), "table"));
    expect_dtype(*ids_, {DType::I32}, "ids");
    expect_dtype(*table_, {DType::F32}, "table");
    expect_ndim(*table_, 2, "table");
    Shape out_shape = ids_->shape();
    out_shape.push_back(table_->dim(1));
    out_ = writes(new_f32(out_shape));
  }
  void execute() override {
    kernels::embedding_forward(ids_->numel(), table_->dim(0), table_->dim(1), ids_->data_as<int32_t>(),
                               table_->data_as<float>(), out_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, out_); }

 private:
  std::shared_ptr<Tensor> ids_, table_, out_;
};

// embeddingBackward(dout, ids, gradTable | null, vocab, accumulate) -> gradTable [vocab, dim]
//   dout [...ids.shape, dim]; without accumulate a given gradTable is zeroed first.
class EmbeddingBackwardPlan : public OpPlan {
 public:
  explicit EmbeddingBackwardPlan(const Napi::CallbackInfo& info) {
    dout_ = reads(to_tensor(arg(info, 0), "dout"));
    ids_ = reads(to_tensor(arg(info, 1), "ids"));
    std::shared_ptr<Tensor> given = to_tensor_or_null(arg(info, 2), "gradTable");
    accumulate_ = to_bool(arg(info, 4), "accumulate");
    expect_dtype(*ids_, {DType::I32}, "ids");
    expect_dtype(*dout_, {DType::F32}, "dout");
    PEFT_CHECK(dout_->ndim() == ids_->ndim() + 1, ErrorCode::Shape,
               "Expected shape [...ids.shape, dim] for dout but received " + shape_to_string(dout_->shape()) +
                   " with ids of shape " + shape_to_string(ids_->shape()));
    dim_ = dout_->dim(-1);
    Shape expected = ids_->shape();
    expected.push_back(dim_);
    expect_shape(*dout_, expected, "dout");
    if (given) {
      expect_dtype(*given, {DType::F32}, "gradTable");
      expect_ndim(*given, 2, "gradTable");
      vocab_ = given->dim(0);
      expect_shape(*given, {vocab_, dim_}, "gradTable");
      expect_distinct(*given, {dout_.get(), ids_.get()}, "gradTable");
      grad_ = writes(given);
      grad_ref_ = Napi::Persistent(arg(info, 2).As<Napi::Object>());
    } else {
      PEFT_CHECK(!accumulate_, ErrorCode::Argument, "Expected a gradTable tensor when accumulate is true but received none");
      vocab_ = to_int(arg(info, 3), "vocab");
      PEFT_CHECK(vocab_ >= 1, ErrorCode::Range, "Expected a vocabulary size >= 1 for vocab but received " + std::to_string(vocab_));
      grad_ = writes(new_f32({vocab_, dim_}));
    }
  }
  void execute() override {
    kernels::embedding_backward(ids_->numel(), vocab_, dim_, dout_->data_as<float>(), ids_->data_as<int32_t>(),
                                grad_->data_as<float>(), accumulate_);
  }
  Napi::Value result(Napi::Env env) override {
    return grad_ref_.IsEmpty() ? Napi::Value(wrap_tensor(env, grad_)) : Napi::Value(grad_ref_.Value());
  }

 private:
  std::shared_ptr<Tensor> dout_, ids_, grad_;
  Napi::ObjectReference grad_ref_;
  int64_t vocab_ = 0, dim_ = 0;
  bool accumulate_ = false;
};

}  // namespace

void register_embedding_ops(Napi::Env env, Napi::Object exports) {
  export_op<EmbeddingForwardPlan>(env, exports, "embeddingForward");
  export_op<EmbeddingBackwardPlan>(env, exports, "embeddingBackward");
}

}  // namespace peft::binding
