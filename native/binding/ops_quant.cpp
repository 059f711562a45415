// 4-bit quantization in bitsandbytes' layout (kernels/nf4.h): quantize, dequantize and the product
// with a 4-bit weight, sync and async. A 4-bit tensor crosses as a plain object of tensors:
//   { data: u8 [ceil(n/2)], absmax: f32 [blocks] (u8 codes when nested), quantMap: f32 [16],
//     blocksize, nestedAbsmax?: f32, nestedQuantMap?: f32 [256], nestedBlocksize?, offset? }
#include <napi.h>

#include <algorithm>
#include <memory>
#include <string>

#include "binding/args.h"
#include "binding/op_runner.h"
#include "core/error.h"
#include "kernels/nf4.h"

namespace peft::binding {

namespace {

Shape to_shape(const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Error(ErrorCode::Argument, "Expected an array of dimensions for " + what + " but received " + describe(v));
  Napi::Array arr = v.As<Napi::Array>();
  Shape shape;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    const int64_t d = to_int(arr.Get(i), what + "[" + std::to_string(i) + "]");
    PEFT_CHECK(d >= 0, ErrorCode::Shape, "Expected a non-negative dimension for " + what + "[" + std::to_string(i) +
                                             "] but received " + std::to_string(d));
    shape.push_back(d);
  }
  shape_numel(shape);  // rejects overflow
  return shape;
}

int64_t option_int(const Napi::Object& o, const char* key, int64_t fallback) {
  const Napi::Value v = o.Get(key);
  return v.IsUndefined() ? fallback : to_int(v, std::string("option ") + key);
}

void expect_numel(const Tensor& t, int64_t n, const std::string& what) {
  PEFT_CHECK(t.numel() == n, ErrorCode::Shape,
             "Expected " + std::to_string(n) + " elements for " + what + " but received shape " +
                 shape_to_string(t.shape()));
}

std::shared_ptr<Tensor> new_tensor(DType dtype, const Shape& shape) {
  return std::make_shared<Tensor>(Tensor::uninitialized(dtype, shape));
}

// The tensors of a 4-bit object of n elements, checked and held for reading by plan.
struct Quant4Operand {
  std::shared_ptr<Tensor> data, absmax, code, nested_absmax, nested_code;
  kernels::Quant4Tensor view{};

  template <typename Reads>
  Quant4Operand(const Napi::Value& value, int64_t n, const std::string& what, Reads reads) {
    Napi::Object o = to_object(value, what);
    view.blocksize = to_int(o.Get("blocksize"), what + ".blocksize");
    kernels::check_quant_blocksize(view.blocksize, (what + ".blocksize").c_str());
    view.numel = n;
    const int64_t blocks = kernels::quant_blocks(n, view.blocksize);
    data = reads(to_tensor(o.Get("data"), what + ".data"));
    expect_dtype(*data, {DType::U8}, what + ".data");
    expect_numel(*data, (n + 1) / 2, what + ".data");
    code = reads(to_tensor(o.Get("quantMap"), what + ".quantMap"));
    expect_dtype(*code, {DType::F32}, what + ".quantMap");
    expect_numel(*code, 16, what + ".quantMap");
    absmax = reads(to_tensor(o.Get("absmax"), what + ".absmax"));
    expect_numel(*absmax, blocks, what + ".absmax");
    view.packed = data->data_as<uint8_t>();
    view.code = code->data_as<float>();
    nested_absmax = reads(to_tensor_or_null(o.Get("nestedAbsmax"), what + ".nestedAbsmax"));
    if (!nested_absmax) {
      expect_dtype(*absmax, {DType::F32}, what + ".absmax");
      view.scales.absmax = absmax->data_as<float>();
      return;
    }
    expect_dtype(*absmax, {DType::U8}, what + ".absmax (double-quantized)");
    auto& s = view.scales;
    s.nested_blocksize = to_int(o.Get("nestedBlocksize"), what + ".nestedBlocksize");
    kernels::check_quant_blocksize(s.nested_blocksize, (what + ".nestedBlocksize").c_str());
    expect_dtype(*nested_absmax, {DType::F32}, what + ".nestedAbsmax");
    expect_numel(*nested_absmax, kernels::quant_blocks(blocks, s.nested_blocksize), what + ".nestedAbsmax");
    nested_code = reads(to_tensor(o.Get("nestedQuantMap"), what + ".nestedQuantMap"));
    expect_dtype(*nested_code, {DType::F32}, what + ".nestedQuantMap");
    expect_numel(*nested_code, 256, what + ".nestedQuantMap");
    s.offset = static_cast<float>(to_number(o.Get("offset"), what + ".offset"));
    s.codes = absmax->data_as<uint8_t>();
    s.nested_absmax = nested_absmax->data_as<float>();
    s.nested_code = nested_code->data_as<float>();
  }
};

std::shared_ptr<Tensor> table_tensor(const float* values, int64_t n) {
  auto t = std::make_shared<Tensor>(DType::F32, Shape{n});
  std::copy(values, values + n, t->data_as<float>());
  return t;
}

// quantize4(x, { quantType: 'nf4' | 'fp4', blocksize, doubleQuant, nestedBlocksize })
//   -> { data, absmax, quantMap, blocksize, nestedAbsmax?, nestedQuantMap?, nestedBlocksize?, offset? }
class Quantize4Plan : public OpPlan {
 public:
  explicit Quantize4Plan(const Napi::CallbackInfo& info) {
    x_ = reads(to_tensor(arg(info, 0), "x"));
    expect_dtype(*x_, {DType::F32, DType::BF16, DType::F16}, "x");
    Napi::Value opts_value = arg(info, 1);
    Napi::Object o = opts_value.IsUndefined() ? Napi::Object::New(info.Env()) : to_object(opts_value, "options");
    const Napi::Value type = o.Get("quantType");
    const std::string name = type.IsUndefined() ? "nf4" : to_string(type, "option quantType");
    PEFT_CHECK(name == "nf4" || name == "fp4", ErrorCode::Argument,
               "Expected \"nf4\" or \"fp4\" for option quantType but received \"" + name + "\"");
    type_ = name == "nf4" ? kernels::Quant4Type::NF4 : kernels::Quant4Type::FP4;
    blocksize_ = option_int(o, "blocksize", kernels::kQuant4DefaultBlock);
    kernels::check_quant_blocksize(blocksize_, "option blocksize");
    nested_ = option_bool(o, "doubleQuant", false);
    nested_blocksize_ = option_int(o, "nestedBlocksize", kernels::kNestedDefaultBlock);
    kernels::check_quant_blocksize(nested_blocksize_, "option nestedBlocksize");
    const int64_t n = x_->numel();
    const int64_t blocks = kernels::quant_blocks(n, blocksize_);
    data_ = writes(new_tensor(DType::U8, {(n + 1) / 2}));
    absmax_ = writes(new_tensor(DType::F32, {blocks}));
    if (nested_) {
      codes_ = writes(new_tensor(DType::U8, {blocks}));
      nested_absmax_ = writes(new_tensor(DType::F32, {kernels::quant_blocks(blocks, nested_blocksize_)}));
    }
  }

  void execute() override {
    kernels::quantize4(type_, blocksize_, x_->data(), x_->dtype(), x_->numel(), data_->data_as<uint8_t>(),
                       absmax_->data_as<float>());
    if (nested_) {
      offset_ = kernels::quantize_absmax_nested(absmax_->data_as<float>(), absmax_->numel(), nested_blocksize_,
                                                kernels::dynamic_map_signed(), codes_->data_as<uint8_t>(),
                                                nested_absmax_->data_as<float>());
    }
  }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("data", wrap_tensor(env, data_));
    out.Set("quantMap", wrap_tensor(env, table_tensor(kernels::quant4_code(type_), 16)));
    out.Set("blocksize", Napi::Number::New(env, static_cast<double>(blocksize_)));
    if (!nested_) {
      out.Set("absmax", wrap_tensor(env, absmax_));
      return out;
    }
    out.Set("absmax", wrap_tensor(env, codes_));
    out.Set("nestedAbsmax", wrap_tensor(env, nested_absmax_));
    out.Set("nestedQuantMap", wrap_tensor(env, table_tensor(kernels::dynamic_map_signed(), 256)));
    out.Set("nestedBlocksize", Napi::Number::New(env, static_cast<double>(nested_blocksize_)));
    out.Set("offset", Napi::Number::New(env, offset_));
    return out;
  }

 private:
  std::shared_ptr<Tensor> x_, data_, absmax_, codes_, nested_absmax_;
  kernels::Quant4Type type_ = kernels::Quant4Type::NF4;
  int64_t blocksize_ = 0, nested_blocksize_ = 0;
  bool nested_ = false;
  float offset_ = 0.0f;
};

// dequantize4(q, shape, out | null) -> out: f32 tensor of shape (a given out of that many elements is filled)
class Dequantize4Plan : public OpPlan {
 public:
  explicit Dequantize4Plan(const Napi::CallbackInfo& info) {
    const Shape shape = to_shape(arg(info, 1), "shape");
    q_ = std::make_unique<Quant4Operand>(arg(info, 0), shape_numel(shape), "q",
                                         [this](const std::shared_ptr<Tensor>& t) { return reads(t); });
    Napi::Value out_value = arg(info, 2);
    out_ = to_tensor_or_null(out_value, "out");
    if (out_) {
      expect_dtype(*out_, {DType::F32}, "out");
      expect_shape(*out_, shape, "out");
      out_ref_ = Napi::Persistent(out_value.As<Napi::Object>());
    } else {
      out_ = new_tensor(DType::F32, shape);
    }
    writes(out_);
  }
  void execute() override { kernels::dequantize4(q_->view, 0, q_->view.numel, out_->data_as<float>()); }
  Napi::Value result(Napi::Env env) override {
    return out_ref_.IsEmpty() ? Napi::Value(wrap_tensor(env, out_)) : Napi::Value(out_ref_.Value());
  }

 private:
  std::unique_ptr<Quant4Operand> q_;
  std::shared_ptr<Tensor> out_;
  Napi::ObjectReference out_ref_;
};

// quant4Matmul(a, q, weightShape [N, K], { transB }) -> transB ? a[M, K] · Wᵀ : a[M, N] · W (f32)
class Quant4MatmulPlan : public OpPlan {
 public:
  explicit Quant4MatmulPlan(const Napi::CallbackInfo& info) {
    a_ = reads(to_tensor(arg(info, 0), "a"));
    const Shape w_shape = to_shape(arg(info, 2), "the weight's shape");
    PEFT_CHECK(w_shape.size() == 2, ErrorCode::Shape,
               "Expected a 2-D 4-bit weight but received shape " + shape_to_string(w_shape));
    n_ = w_shape[0];
    k_ = w_shape[1];
    q_ = std::make_unique<Quant4Operand>(arg(info, 1), n_ * k_, "q",
                                         [this](const std::shared_ptr<Tensor>& t) { return reads(t); });
    Napi::Value opts_value = arg(info, 3);
    Napi::Object o = opts_value.IsUndefined() ? Napi::Object::New(info.Env()) : to_object(opts_value, "options");
    trans_b_ = option_bool(o, "transB", false);
    expect_ndim(*a_, 2, "a");
    expect_dtype(*a_, trans_b_ ? std::initializer_list<DType>{DType::F32, DType::BF16} : std::initializer_list<DType>{DType::F32}, "a");
    const int64_t inner = trans_b_ ? k_ : n_;
    PEFT_CHECK(a_->dim(1) == inner, ErrorCode::Shape,
               "Expected matching inner dimensions but a is " + shape_to_string(a_->shape()) + " and op(W) is " +
                   shape_to_string(trans_b_ ? Shape{k_, n_} : Shape{n_, k_}));
    m_ = a_->dim(0);
    out_ = writes(new_tensor(DType::F32, {m_, trans_b_ ? n_ : k_}));
    workspace_ = new_tensor(DType::F32, {kernels::quant4_matmul_workspace(n_, k_)});
  }

  void execute() override {
    if (trans_b_) {
      kernels::quant4_matmul(m_, n_, k_, kernels::MatrixRef{a_->data(), a_->dtype(), k_, false}, q_->view,
                             out_->data_as<float>(), n_, 1.0f, false, workspace_->data_as<float>());
    } else {
      kernels::quant4_matmul_dx(m_, n_, k_, a_->data_as<float>(), q_->view, out_->data_as<float>(), 1.0f, false,
                                workspace_->data_as<float>());
    }
  }
  Napi::Value result(Napi::Env env) override { return wrap_tensor(env, out_); }

 private:
  std::shared_ptr<Tensor> a_, out_, workspace_;
  std::unique_ptr<Quant4Operand> q_;
  int64_t m_ = 0, n_ = 0, k_ = 0;
  bool trans_b_ = false;
};

}  // namespace

void register_quant_ops(Napi::Env env, Napi::Object exports) {
  export_op<Quantize4Plan>(env, exports, "quantize4");
  export_op<Dequantize4Plan>(env, exports, "dequantize4");
  export_op<Quant4MatmulPlan>(env, exports, "quant4Matmul");
}

}  // namespace peft::binding
