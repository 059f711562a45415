#include "binding/gguf_values.h"

#include <cstring>

#include "core/error.h"

namespace peft::binding {

namespace {

using io::GgufType;
using io::GgufValue;

constexpr uint64_t kMaxSafe = (uint64_t{1} << 53) - 1;  // Number.MAX_SAFE_INTEGER

Napi::Value unsigned_to_js(Napi::Env env, uint64_t u) {
  if (u <= kMaxSafe) return Napi::Number::New(env, static_cast<double>(u));
  return Napi::BigInt::New(env, u);
}

Napi::Value signed_to_js(Napi::Env env, int64_t i) {
  if (i >= -static_cast<int64_t>(kMaxSafe) && i <= static_cast<int64_t>(kMaxSafe)) {
    return Napi::Number::New(env, static_cast<double>(i));
  }
  return Napi::BigInt::New(env, i);
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Element k of an array of scalars, from its little-endian bytes.
Napi::Value scalar_element(Napi::Env env, GgufType type, const uint8_t* raw, size_t k) {
  switch (type) {
    case GgufType::U8: return Napi::Number::New(env, raw[k]);
    case GgufType::I8: return Napi::Number::New(env, load<int8_t>(raw + k));
    case GgufType::U16: return Napi::Number::New(env, load<uint16_t>(raw + 2 * k));
    case GgufType::I16: return Napi::Number::New(env, load<int16_t>(raw + 2 * k));
    case GgufType::U32: return Napi::Number::New(env, load<uint32_t>(raw + 4 * k));
    case GgufType::I32: return Napi::Number::New(env, load<int32_t>(raw + 4 * k));
    case GgufType::F32: return Napi::Number::New(env, load<float>(raw + 4 * k));
    case GgufType::U64: return unsigned_to_js(env, load<uint64_t>(raw + 8 * k));
    case GgufType::I64: return signed_to_js(env, load<int64_t>(raw + 8 * k));
    case GgufType::F64: return Napi::Number::New(env, load<double>(raw + 8 * k));
    case GgufType::Bool: return Napi::Boolean::New(env, raw[k] != 0);
    case GgufType::String:
    case GgufType::Array: break;  // not scalars
  }
  return env.Undefined();
}

}  // namespace

Napi::Value gguf_value_to_js(Napi::Env env, const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8:
    case GgufType::U16:
    case GgufType::U32:
    case GgufType::U64: return unsigned_to_js(env, v.u);
    case GgufType::I8:
    case GgufType::I16:
    case GgufType::I32:
    case GgufType::I64: return signed_to_js(env, v.i);
    case GgufType::F32:
    case GgufType::F64: return Napi::Number::New(env, v.f);
    case GgufType::Bool: return Napi::Boolean::New(env, v.b);
    case GgufType::String: return Napi::String::New(env, v.str);  // invalid UTF-8 becomes U+FFFD
    case GgufType::Array: break;
  }
  const size_t n = static_cast<size_t>(v.count);
  PEFT_CHECK(n <= 0xFFFFFFFEu, ErrorCode::Range,
             "Expected a metadata array of at most 2^32 - 2 elements (the JS array limit) but received " + std::to_string(n));
  Napi::Array out = Napi::Array::New(env, n);
  for (size_t k = 0; k < n; ++k) {
    Napi::Value item = v.elem_type == GgufType::String  ? Napi::String::New(env, v.strings[k])
                       : v.elem_type == GgufType::Array ? gguf_value_to_js(env, v.items[k])
                                                        : scalar_element(env, v.elem_type, v.raw.data(), k);
    out.Set(static_cast<uint32_t>(k), item);
  }
  return out;
}

std::string gguf_value_type_text(const GgufValue& v) {
  if (v.type != GgufType::Array) return io::gguf_type_name(v.type);
  if (v.elem_type != GgufType::Array) return std::string("array<") + io::gguf_type_name(v.elem_type) + ">";
  // Nested arrays may differ in element type; the first one names them (or "array<array<?>>" when empty).
  return "array<" + (v.items.empty() ? std::string("array<?>") : gguf_value_type_text(v.items[0])) + ">";
}

}  // namespace peft::binding
