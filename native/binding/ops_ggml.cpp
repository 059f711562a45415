// ggml's block formats from JS (kernels/ggml_quant.h), sync and async. A quantized matrix crosses as
// its u8 block bytes plus the type name and the shape [rows, cols]:
//   ggmlQuantize(x [rows, cols] f32, type) -> u8 [rows · row bytes]
//   ggmlDequantize(data, type, [rows, cols]) -> f32 [rows, cols]
//   ggmlMatmul(a, data, type, [N, K], { transB, computeDtype }) -> transB ? a[M, K] · Wᵀ : a[M, N] · W
//   ggmlFormats() -> [{ name, id, block, bytes, quantizer }]
#include <napi.h>

#include <memory>
#include <string>

#include "binding/args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/backend.h"
#include "kernels/ggml_quant.h"

namespace peft::binding {

namespace {

const kernels::GgmlBlockFormat& to_format(const Napi::Value& v, const std::string& what) {
  const std::string name = to_string(v, what);
  const kernels::GgmlBlockFormat* f = kernels::ggml_block_format_named(name.c_str());
  PEFT_CHECK(f != nullptr, ErrorCode::Unsupported,
             "Expected a ggml block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS) for " +
                 what + " but received \"" + name + "\"");
  return *f;
}

// [rows, cols] with cols a whole number of the format's blocks.
void to_matrix_shape(const Napi::Value& v, const kernels::GgmlBlockFormat& f, const std::string& what, int64_t& rows,
                     int64_t& cols) {
  PEFT_CHECK(v.IsArray() && v.As<Napi::Array>().Length() == 2, ErrorCode::Shape,
             "Expected a shape [rows, cols] for " + what + " but received " + describe(v));
  Napi::Array a = v.As<Napi::Array>();
  rows = to_int(a.Get(uint32_t{0}), what + "[0]");
  cols = to_int(a.Get(uint32_t{1}), what + "[1]");
  PEFT_CHECK(rows > 0 && cols > 0 && cols % f.block == 0, ErrorCode::Shape,
             "Expected positive rows and a multiple of " + std::to_string(f.block) + " columns (" + f.name +
                 "'s block) for " + what + " but received [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  shape_numel({rows, cols});  // rejects overflow
}

std::shared_ptr<Tensor> new_tensor(DType dtype, const Shape& shape) {
  return std::make_shared<Tensor>(Tensor::uninitialized(dtype, shape));
}

// t, checked to be the block bytes of a [rows, cols] matrix.
std::shared_ptr<Tensor> block_bytes(const std::shared_ptr<Tensor>& t, const kernels::GgmlBlockFormat& f,
                                    int64_t rows, int64_t cols, const std::string& what) {
  expect_dtype(*t, {DType::U8}, what);
  const int64_t want = rows * kernels::ggml_row_bytes(f.type, cols);
  PEFT_CHECK(t->numel() == want && t->is_contiguous(), ErrorCode::Shape,
             "Expected " + std::to_string(want) + " contiguous bytes (" + std::to_string(rows) + " rows of " +
                 std::to_string(cols / f.block) + " " + f.name + " blocks) for " + what + " but received shape " +
                 shape_to_string(t->shape()));
  return t;
}

class GgmlQuantizePlan : public OpPlan {
 public:
  explicit GgmlQuantizePlan(const Napi::CallbackInfo& info) : format_(&to_format(arg(info, 1), "type")) {
    x_ = reads(to_tensor(arg(info, 0), "x"));
    expect_dtype(*x_, {DType::F32}, "x");
    PEFT_CHECK(x_->ndim() >= 1 && x_->is_contiguous(), ErrorCode::Shape,
               "Expected a contiguous tensor of rows to quantize but received shape " + shape_to_string(x_->shape()));
    cols_ = x_->dim(x_->ndim() - 1);
    rows_ = cols_ > 0 ? x_->numel() / cols_ : 0;
    PEFT_CHECK(cols_ > 0 && rows_ > 0 && cols_ % format_->block == 0, ErrorCode::Shape,
               "Expected rows of a positive multiple of " + std::to_string(format_->block) + " elements for " +
                   format_->name + " but received shape " + shape_to_string(x_->shape()));
    PEFT_CHECK(format_->quantizer, ErrorCode::Unsupported, std::string("No quantizer for ") + format_->name + " here");
    out_ = writes(new_tensor(DType::U8, {rows_ * kernels::ggml_row_bytes(format_->type, cols_)}));
  }
  void execute() override {
    kernels::ggml_quantize_rows(format_->type, x_->data_as<float>(), rows_, cols_, out_->data_as<uint8_t>());
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, out_); }

 private:
  const kernels::GgmlBlockFormat* format_;
  std::shared_ptr<Tensor> x_, out_;
  int64_t rows_ = 0, cols_ = 0;
};

class GgmlDequantizePlan : public OpPlan {
 public:
  explicit GgmlDequantizePlan(const Napi::CallbackInfo& info) : format_(&to_format(arg(info, 1), "type")) {
    to_matrix_shape(arg(info, 2), *format_, "shape", rows_, cols_);
    data_ = reads(block_bytes(to_tensor(arg(info, 0), "data"), *format_, rows_, cols_, "data"));
    out_ = writes(new_tensor(DType::F32, {rows_, cols_}));
  }
  void execute() override {
    const kernels::GgmlQuantTensor q{format_->type, data_->data_as<uint8_t>(), rows_, cols_};
    kernels::ggml_dequantize_rows(q, 0, rows_, out_->data_as<float>());
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, out_); }

 private:
  const kernels::GgmlBlockFormat* format_;
  std::shared_ptr<Tensor> data_, out_;
  int64_t rows_ = 0, cols_ = 0;
};

class GgmlMatmulPlan : public OpPlan {
 public:
  explicit GgmlMatmulPlan(const Napi::CallbackInfo& info) : format_(&to_format(arg(info, 2), "type")) {
    a_ = reads(to_tensor(arg(info, 0), "a"));
    to_matrix_shape(arg(info, 3), *format_, "the weight's shape", n_, k_);
    data_ = reads(block_bytes(to_tensor(arg(info, 1), "data"), *format_, n_, k_, "data"));
    Napi::Value opts_value = arg(info, 4);
    Napi::Object o = opts_value.IsUndefined() ? Napi::Object::New(info.Env()) : to_object(opts_value, "options");
    trans_b_ = option_bool(o, "transB", false);
    const Napi::Value compute = o.Get("computeDtype");
    compute_ = compute.IsUndefined() ? DType::F32 : parse_dtype(to_string(compute, "option computeDtype"));
    PEFT_CHECK(compute_ == DType::F32 || compute_ == DType::BF16, ErrorCode::DType,
               std::string("Expected \"f32\" or \"bf16\" for option computeDtype but received ") + dtype_name(compute_));
    expect_ndim(*a_, 2, "a");
    expect_dtype(*a_, trans_b_ ? std::initializer_list<DType>{DType::F32, DType::BF16} : std::initializer_list<DType>{DType::F32}, "a");
    const int64_t inner = trans_b_ ? k_ : n_;
    PEFT_CHECK(a_->dim(1) == inner && a_->is_contiguous(), ErrorCode::Shape,
               "Expected a contiguous a with matching inner dimensions but a is " + shape_to_string(a_->shape()) +
                   " and op(W) is " + shape_to_string(trans_b_ ? Shape{k_, n_} : Shape{n_, k_}));
    m_ = a_->dim(0);
    out_ = writes(new_tensor(DType::F32, {m_, trans_b_ ? n_ : k_}));
  }

  void execute() override {
    const kernels::GgmlQuantTensor w{format_->type, data_->data_as<uint8_t>(), n_, k_};
    // Through the CPU backend, as a model's layers call it: its panel workspace is kept per thread.
    const kernels::Context ctx{&kernels::cpu_backend()};
    if (trans_b_) {
      ctx.ggml_matmul(m_, kernels::MatrixRef{a_->data(), a_->dtype(), k_, false}, w, out_->data_as<float>(), n_, 1.0f, false,
                      compute_);
    } else {
      ctx.ggml_matmul_dx(m_, a_->data_as<float>(), w, out_->data_as<float>(), 1.0f, false, compute_);
    }
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, out_); }

 private:
  const kernels::GgmlBlockFormat* format_;
  std::shared_ptr<Tensor> a_, data_, out_;
  int64_t m_ = 0, n_ = 0, k_ = 0;
  bool trans_b_ = false;
  DType compute_ = DType::F32;
};

Napi::Value ggml_formats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  for (uint32_t id = 0; id < 64; ++id) {
    const kernels::GgmlBlockFormat* f = kernels::ggml_block_format(id);
    if (!f) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", f->name);
    o.Set("id", Napi::Number::New(env, id));
    o.Set("block", Napi::Number::New(env, static_cast<double>(f->block)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(f->bytes)));
    o.Set("quantizer", f->quantizer);
    out.Set(i++, o);
  }
  return out;
}

}  // namespace

void register_ggml_ops(Napi::Env env, Napi::Object exports) {
  export_op<GgmlQuantizePlan>(env, exports, "ggmlQuantize");
  export_op<GgmlDequantizePlan>(env, exports, "ggmlDequantize");
  export_op<GgmlMatmulPlan>(env, exports, "ggmlMatmul");
  exports.Set("ggmlFormats", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return guarded(info, [&] { return ggml_formats(info); });
              }));
}

}  // namespace peft::binding
