#include "binding/model_quant.h"

#include "binding/args.h"
#include "core/error.h"

namespace peft::binding {

namespace {

Shape to_weight_shape(const Napi::Value& v, const std::string& what) {
  PEFT_CHECK(v.IsArray(), ErrorCode::Argument, "Expected an array of dimensions for " + what + " but received " + describe(v));
  Napi::Array a = v.As<Napi::Array>();
  Shape shape;
  for (uint32_t i = 0; i < a.Length(); ++i) shape.push_back(to_int(a.Get(i), what + "[" + std::to_string(i) + "]"));
  PEFT_CHECK(shape.size() == 2 && shape[0] > 0 && shape[1] > 0, ErrorCode::Shape,
             "Expected a shape [out, in] of positive sizes for " + what + " but received " + shape_to_string(shape));
  shape_numel(shape);  // rejects overflow
  return shape;
}

// {quantType: "ggml", ggmlType: "Q4_K", shape, data (u8 blocks), computeDtype}.
nn::QuantWeightPtr to_ggml_weight(const Napi::Object& o, Shape shape, const std::string& what) {
  auto q = std::make_shared<nn::QuantWeight>();
  q->layout = nn::QuantLayout::Ggml;
  q->shape = std::move(shape);
  const std::string name = to_string(o.Get("ggmlType"), what + ".ggmlType");
  const kernels::GgmlBlockFormat* f = kernels::ggml_block_format_named(name.c_str());
  PEFT_CHECK(f != nullptr, ErrorCode::Unsupported,
             "Expected a ggml block type with kernels (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K, IQ4_NL, IQ4_XS) for " +
                 what + ".ggmlType but received \"" + name + "\"");
  q->ggml_type = f->type;
  q->compute_dtype = parse_dtype(to_string(o.Get("computeDtype"), what + ".computeDtype"));
  q->packed = to_tensor(o.Get("data"), what + ".data");
  q->validate(what);
  return q;
}

nn::QuantWeightPtr to_quant_weight(const Napi::Value& v, const std::string& what) {
  Napi::Object o = to_object(v, what);
  Shape shape = to_weight_shape(o.Get("shape"), what + ".shape");
  const std::string type = to_string(o.Get("quantType"), what + ".quantType");
  if (type == "ggml") return to_ggml_weight(o, std::move(shape), what);
  auto q = std::make_shared<nn::QuantWeight>();
  q->shape = std::move(shape);
  PEFT_CHECK(type == "nf4" || type == "fp4", ErrorCode::Argument,
             "Expected \"nf4\", \"fp4\" or \"ggml\" for " + what + ".quantType but received \"" + type + "\"");
  q->type = type == "nf4" ? kernels::Quant4Type::NF4 : kernels::Quant4Type::FP4;
  q->source_dtype = parse_dtype(to_string(o.Get("dtype"), what + ".dtype"));
  q->compute_dtype = parse_dtype(to_string(o.Get("computeDtype"), what + ".computeDtype"));
  q->blocksize = to_int(o.Get("blocksize"), what + ".blocksize");
  q->packed = to_tensor(o.Get("data"), what + ".data");
  q->absmax = to_tensor(o.Get("absmax"), what + ".absmax");
  q->quant_map = to_tensor(o.Get("quantMap"), what + ".quantMap");
  q->nested_absmax = to_tensor_or_null(o.Get("nestedAbsmax"), what + ".nestedAbsmax");
  if (q->nested_absmax) {
    q->nested_quant_map = to_tensor(o.Get("nestedQuantMap"), what + ".nestedQuantMap");
    q->nested_blocksize = to_int(o.Get("nestedBlocksize"), what + ".nestedBlocksize");
    q->offset = static_cast<float>(to_number(o.Get("offset"), what + ".offset"));
  }
  q->validate(what);
  return q;
}

Napi::Array shape_array(Napi::Env env, const nn::QuantWeight& q) {
  Napi::Array shape = Napi::Array::New(env, 2);
  shape.Set(uint32_t{0}, Napi::Number::New(env, static_cast<double>(q.rows())));
  shape.Set(uint32_t{1}, Napi::Number::New(env, static_cast<double>(q.cols())));
  return shape;
}

Napi::Object quant_weight_object(Napi::Env env, const nn::QuantWeight& q) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", wrap_tensor(env, q.packed));
  if (q.ggml()) {
    out.Set("shape", shape_array(env, q));
    out.Set("quantType", "ggml");
    out.Set("ggmlType", q.format_name());
    out.Set("computeDtype", dtype_name(q.compute_dtype));
    return out;
  }
  out.Set("absmax", wrap_tensor(env, q.absmax));
  out.Set("quantMap", wrap_tensor(env, q.quant_map));
  out.Set("blocksize", Napi::Number::New(env, static_cast<double>(q.blocksize)));
  if (q.nested()) {
    out.Set("nestedAbsmax", wrap_tensor(env, q.nested_absmax));
    out.Set("nestedQuantMap", wrap_tensor(env, q.nested_quant_map));
    out.Set("nestedBlocksize", Napi::Number::New(env, static_cast<double>(q.nested_blocksize)));
    out.Set("offset", Napi::Number::New(env, q.offset));
  }
  out.Set("shape", shape_array(env, q));
  out.Set("quantType", q.type == kernels::Quant4Type::NF4 ? "nf4" : "fp4");
  out.Set("dtype", dtype_name(q.source_dtype));
  out.Set("computeDtype", dtype_name(q.compute_dtype));
  return out;
}

}  // namespace

nn::QuantWeightMap to_quant_weights(const Napi::Value& v, const std::string& what) {
  nn::QuantWeightMap out;
  if (v.IsUndefined() || v.IsNull()) return out;
  Napi::Object o = to_object(v, what);
  Napi::Array names = o.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); ++i) {
    const std::string name = to_string(names.Get(i), what + " key");
    out[name] = to_quant_weight(o.Get(name), what + "[" + name + "]");
  }
  return out;
}

Napi::Value quantized_weights(model::AdapterHost& m, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  for (const auto& [name, p] : m.parameters())
    if (p->quant) out.Set(name, quant_weight_object(env, *p->quant));
  return out;
}

}  // namespace peft::binding
