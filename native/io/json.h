// A small JSON reader for file headers (safetensors). Depth, value count and numbers are bounded,
// strings must be valid UTF-8, and every syntax error is an E_FORMAT naming the source and the byte
// offset.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace peft::io {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  bool is_integer = false;  // the literal had no fraction or exponent and fits in int64
  int64_t integer = 0;
  std::string string;
  std::vector<JsonValue> items;                             // Array
  std::vector<std::pair<std::string, JsonValue>> members;  // Object, in file order

  const JsonValue* find(const std::string& key) const;  // Object member or null
};

// Parses exactly one JSON value (surrounding whitespace allowed) from text[0, size).
JsonValue parse_json(const char* text, size_t size, const std::string& what);

// Writes s as a JSON string literal (quotes and escapes included).
std::string json_quote(const std::string& s);

}  // namespace peft::io
