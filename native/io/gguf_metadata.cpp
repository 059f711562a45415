#include "io/gguf_metadata.h"

#include "core/error.h"

namespace peft::io::gguf_detail {

namespace {

// Bytes one element of `type` takes at least: a string is at least its u64 length, an array at least
// its u32 element type and u64 count. Bounds the element count an array may claim.
size_t min_encoded_size(GgufType type) {
  switch (type) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::Bool: return 1;
    case GgufType::U16:
    case GgufType::I16: return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32: return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64:
    case GgufType::String: return 8;
    case GgufType::Array: return 12;
  }
  return 1;
}

bool is_scalar(GgufType type) { return type != GgufType::String && type != GgufType::Array; }

}  // namespace

void fail_format(const std::string& where, const std::string& message) {
  throw Error(ErrorCode::Format, where + ": " + message);
}

std::string read_string(ByteReader& r, const std::string& where, const std::string& field, size_t index) {
  // Names are built only on failure: vocabularies hold a hundred thousand strings.
  auto name = [&] { return index == kNoIndex ? field : field + "[" + std::to_string(index) + "]"; };
  const size_t at = r.offset();
  if (r.remaining() < 8) r.take(8, (name() + " (string length)").c_str());  // throws: truncated
  const uint64_t length = r.read<uint64_t>("string length");
  if (length > r.remaining()) {
    fail_format(where, "Expected a string length within the " + std::to_string(r.remaining()) + " bytes left after offset " +
                           std::to_string(at) + " for " + name() + " but received " + std::to_string(length));
  }
  const uint8_t* p = r.take(static_cast<size_t>(length), "string");
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(length));
}

bool is_valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    // No overlong forms, surrogates or code points past U+10FFFF.
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

GgufType read_value_type(ByteReader& r, const std::string& where, const std::string& field) {
  const size_t at = r.offset();
  const uint32_t type = r.read<uint32_t>((field + " (value type)").c_str());
  if (type > static_cast<uint32_t>(GgufType::F64)) {
    fail_format(where, "Expected a metadata value type in 0..12 for " + field + " at offset " + std::to_string(at) +
                           " but received " + std::to_string(type));
  }
  return static_cast<GgufType>(type);
}

GgufValue read_value(ByteReader& r, GgufType type, const std::string& where, const std::string& field, int depth,
                     uint64_t* nested_left) {
  GgufValue v;
  v.type = type;
  const char* f = field.c_str();
  switch (type) {
    case GgufType::U8: v.u = r.read<uint8_t>(f); break;
    case GgufType::I8: v.i = r.read<int8_t>(f); break;
    case GgufType::U16: v.u = r.read<uint16_t>(f); break;
    case GgufType::I16: v.i = r.read<int16_t>(f); break;
    case GgufType::U32: v.u = r.read<uint32_t>(f); break;
    case GgufType::I32: v.i = r.read<int32_t>(f); break;
    case GgufType::U64: v.u = r.read<uint64_t>(f); break;
    case GgufType::I64: v.i = r.read<int64_t>(f); break;
    case GgufType::F32: v.f = r.read<float>(f); break;
    case GgufType::F64: v.f = r.read<double>(f); break;
    case GgufType::Bool: v.b = r.read<uint8_t>(f) != 0; break;
    case GgufType::String: v.str = read_string(r, where, field); break;
    case GgufType::Array: {
      v.elem_type = read_value_type(r, where, field + " (array element type)");
      if (v.elem_type == GgufType::Array && depth + 1 >= kMaxArrayDepth) {
        fail_format(where, "Expected arrays nested at most " + std::to_string(kMaxArrayDepth) + " deep for " + field +
                               " but received deeper nesting");
      }
      v.count = r.read<uint64_t>((field + " (array length)").c_str());
      const size_t min_size = min_encoded_size(v.elem_type);
      if (v.count > r.remaining() / min_size) {
        fail_format(where, "Expected an array length that fits in the " + std::to_string(r.remaining()) +
                               " bytes left at offset " + std::to_string(r.offset()) + " for " + field + " (array of " +
                               gguf_type_name(v.elem_type) + ") but received " + std::to_string(v.count));
      }
      const size_t n = static_cast<size_t>(v.count);
      if (is_scalar(v.elem_type)) {
        const uint8_t* p = r.take(n * min_size, f);
        v.raw.assign(p, p + n * min_size);
      } else if (v.elem_type == GgufType::String) {
        v.strings.reserve(n);
        for (size_t k = 0; k < n; ++k) v.strings.push_back(read_string(r, where, field, k));
      } else {
        // An element of an array of arrays is itself (element type, length, values), untagged.
        if (nested_left != nullptr) {
          if (n > *nested_left) {
            fail_format(where, "Expected at most " + std::to_string(kMaxNestedItems) + " elements in arrays of arrays in all for " + field +
                                   " but received more (" + std::to_string(n) + " here)");
          }
          *nested_left -= n;
        }
        v.items.reserve(n);
        for (size_t k = 0; k < n; ++k) {
          v.items.push_back(read_value(r, GgufType::Array, where, field + "[" + std::to_string(k) + "]", depth + 1, nested_left));
        }
      }
      break;
    }
  }
  return v;
}

}  // namespace peft::io::gguf_detail
