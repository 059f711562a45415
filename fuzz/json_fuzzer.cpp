// libFuzzer target: the JSON reader of native/io/json.cpp (safetensors headers) over arbitrary
// bytes. A refusal must be E_FORMAT; an accepted document must survive a round trip: written back
// (strings through json_quote) and parsed again, it gives the same tree.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "fuzz_common.h"
#include "io/json.h"

using namespace peft;
using io::JsonValue;

namespace {

std::string write(const JsonValue& v) {
  switch (v.kind) {
    case JsonValue::Kind::Null: return "null";
    case JsonValue::Kind::Bool: return v.boolean ? "true" : "false";
    case JsonValue::Kind::Number: {
      if (v.is_integer) return std::to_string(v.integer);
      if (!std::isfinite(v.number)) return v.number > 0 ? "1e999" : "-1e999";
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", v.number);
      return buf;
    }
    case JsonValue::Kind::String: return io::json_quote(v.string);
    case JsonValue::Kind::Array: {
      std::string out = "[";
      for (size_t i = 0; i < v.items.size(); ++i) out += (i ? "," : "") + write(v.items[i]);
      return out + "]";
    }
    case JsonValue::Kind::Object: {
      std::string out = "{";
      for (size_t i = 0; i < v.members.size(); ++i) {
        out += (i ? "," : "") + io::json_quote(v.members[i].first) + ":" + write(v.members[i].second);
      }
      return out + "}";
    }
  }
  return "";
}

bool same(const JsonValue& a, const JsonValue& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case JsonValue::Kind::Null: return true;
    case JsonValue::Kind::Bool: return a.boolean == b.boolean;
    case JsonValue::Kind::Number: return a.number == b.number || (std::isnan(a.number) && std::isnan(b.number));
    case JsonValue::Kind::String: return a.string == b.string;
    case JsonValue::Kind::Array:
      if (a.items.size() != b.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i) {
        if (!same(a.items[i], b.items[i])) return false;
      }
      return true;
    case JsonValue::Kind::Object:
      if (a.members.size() != b.members.size()) return false;
      for (size_t i = 0; i < a.members.size(); ++i) {
        if (a.members[i].first != b.members[i].first || !same(a.members[i].second, b.members[i].second)) return false;
      }
      return true;
  }
  return false;
}

// An integer literal's double and int64 readings agree (both round the same decimal).
void check_numbers(const JsonValue& v) {
  if (v.kind == JsonValue::Kind::Number && v.is_integer) FUZZ_ASSERT(static_cast<double>(v.integer) == v.number);
  for (const auto& item : v.items) check_numbers(item);
  for (const auto& [k, m] : v.members) check_numbers(m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy with no terminator: the parser must not read past `size`.
  std::unique_ptr<char[]> text(new char[size]);
  if (size) std::memcpy(text.get(), data, size);
  JsonValue v;
  try {
    v = io::parse_json(text.get(), size, "fuzz input");
  } catch (const Error& e) {
    fuzz::expect_code(e, {ErrorCode::Format});
    return 0;
  }
  check_numbers(v);
  const std::string again = write(v);
  JsonValue w;
  try {
    w = io::parse_json(again.data(), again.size(), "fuzz round trip");
  } catch (const Error& e) {
    std::fprintf(stderr, "round trip refused: %s\n", e.what());
    fuzz::finding("a document written back does not parse");
  }
  FUZZ_ASSERT(same(v, w));
  if (fuzz::verbose()) std::fprintf(stderr, "accepted\n");
  return 0;
}
