// GGUF metadata values as JS values: integers as Numbers (u64 / i64 beyond 2^53 as BigInts),
// floats as Numbers, bools, strings, arrays (nested too) as JS arrays.
#pragma once
#include <napi.h>

#include <string>

#include "io/gguf.h"

namespace peft::binding {

Napi::Value gguf_value_to_js(Napi::Env env, const io::GgufValue& v);
// The value's type as text: "u32", "string", "array<f32>", "array<array<u8>>", ...
std::string gguf_value_type_text(const io::GgufValue& v);

}  // namespace peft::binding
