// Reading GGUF strings and typed metadata values with every length checked against the bytes left
// before anything is allocated. Internal to the GGUF reader.
#pragma once
#include <string>

#include "io/gguf.h"
#include "io/mapped_file.h"

namespace peft::io::gguf_detail {

// Deepest nesting of arrays in arrays accepted (llama.cpp writes none; this stops stack exhaustion).
constexpr int kMaxArrayDepth = 8;

// `where` names the file in messages, e.g. "GGUF file /m.gguf"; `field` names what is being read.
[[noreturn]] void fail_format(const std::string& where, const std::string& message);
constexpr size_t kNoIndex = static_cast<size_t>(-1);
// A u64 length and that many bytes; `index` names an array element in messages.
std::string read_string(ByteReader& r, const std::string& where, const std::string& field, size_t index = kNoIndex);
// Keys and tensor names must be valid UTF-8: JS sees them as strings, and two invalid names would
// both become U+FFFD there (values stay lenient: some vocabularies hold partial byte sequences).
bool is_valid_utf8(const std::string& s);
GgufType read_value_type(ByteReader& r, const std::string& where, const std::string& field);
// Elements of arrays of arrays accepted in one file: each costs a GgufValue (~150 bytes) for 12 bytes
// of file, so this bounds what a hostile file can make us allocate (llama.cpp writes none).
constexpr uint64_t kMaxNestedItems = uint64_t{1} << 20;
// `nested_left` (when given) is the budget of array-of-array elements left for the file.
GgufValue read_value(ByteReader& r, GgufType type, const std::string& where, const std::string& field, int depth = 0,
                     uint64_t* nested_left = nullptr);

}  // namespace peft::io::gguf_detail
