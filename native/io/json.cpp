#include "io/json.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace peft::io {

namespace {

constexpr int kMaxDepth = 64;
// Values in one document at most. A value costs ~100 bytes here against 2 bytes of text ("0,"), so
// this bounds the memory a hostile header can claim (~0.5 GB) well above any real header
// (a checkpoint of 100k tensors has under a million values).
constexpr size_t kMaxValues = size_t{1} << 22;

class Parser {
 public:
  Parser(const char* text, size_t size, const std::string& what) : p_(text), begin_(text), end_(text + size), what_(what) {}

  JsonValue parse_document() {
    JsonValue v = parse_value(0);
    skip_space();
    if (p_ != end_) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(ErrorCode::Format, what_ + ": invalid JSON at byte " + std::to_string(p_ - begin_) + ": " + why);
  }

  void skip_space() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  void expect_literal(const char* word) {
    const size_t n = std::strlen(word);
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) fail(std::string("expected ") + word);
    p_ += n;
  }

  JsonValue parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    if (++values_ > kMaxValues) fail("more than " + std::to_string(kMaxValues) + " values");
    skip_space();
    if (p_ == end_) fail("unexpected end of input");
    JsonValue v;
    switch (*p_) {
      case '{': parse_object(v, depth); break;
      case '[': parse_array(v, depth); break;
      case '"':
        v.kind = JsonValue::Kind::String;
        v.string = parse_string();
        break;
      case 't': expect_literal("true"); v.kind = JsonValue::Kind::Bool; v.boolean = true; break;
      case 'f': expect_literal("false"); v.kind = JsonValue::Kind::Bool; break;
      case 'n': expect_literal("null"); break;
      default: parse_number(v);
    }
    return v;
  }

  void parse_object(JsonValue& v, int depth) {
    v.kind = JsonValue::Kind::Object;
    ++p_;
    skip_space();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return;
    }
    for (;;) {
      skip_space();
      if (p_ == end_ || *p_ != '"') fail("expected a string key");
      std::string key = parse_string();
      skip_space();
      if (p_ == end_ || *p_ != ':') fail("expected ':' after a key");
      ++p_;
      v.members.emplace_back(std::move(key), parse_value(depth + 1));
      skip_space();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        continue;
      }
      if (p_ < end_ && *p_ == '}') {
        ++p_;
        return;
      }
      fail("expected ',' or '}' in an object");
    }
  }

  void parse_array(JsonValue& v, int depth) {
    v.kind = JsonValue::Kind::Array;
    ++p_;
    skip_space();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return;
    }
    for (;;) {
      v.items.push_back(parse_value(depth + 1));
      skip_space();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        continue;
      }
      if (p_ < end_ && *p_ == ']') {
        ++p_;
        return;
      }
      fail("expected ',' or ']' in an array");
    }
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // One multi-byte UTF-8 sequence whose lead byte was just read: JSON text is UTF-8, and names read
  // here become JS strings, where two different invalid names would both turn into U+FFFD.
  void take_utf8(std::string& out) {
    const auto lead = static_cast<unsigned char>(p_[-1]);
    size_t len;
    uint32_t cp;
    if ((lead & 0xE0) == 0xC0) { len = 2; cp = lead & 0x1F; }
    else if ((lead & 0xF0) == 0xE0) { len = 3; cp = lead & 0x0F; }
    else if ((lead & 0xF8) == 0xF0) { len = 4; cp = lead & 0x07; }
    else { --p_; fail("invalid UTF-8 in a string"); }
    if (static_cast<size_t>(end_ - p_) < len - 1) { --p_; fail("invalid UTF-8 in a string"); }
    for (size_t k = 0; k + 1 < len; ++k) {
      const auto b = static_cast<unsigned char>(p_[k]);
      if ((b & 0xC0) != 0x80) { --p_; fail("invalid UTF-8 in a string"); }
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};  // shortest form only
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) { --p_; fail("invalid UTF-8 in a string"); }
    out.append(p_ - 1, len);
    p_ += len - 1;
  }

  uint32_t parse_hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    uint32_t cp = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      cp <<= 4;
      if (c >= '0' && c <= '9') cp |= c - '0';
      else if (c >= 'a' && c <= 'f') cp |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') cp |= c - 'A' + 10;
      else fail("bad hex digit in a \\u escape");
    }
    return cp;
  }

  std::string parse_string() {
    ++p_;  // opening quote
    std::string out;
    for (;;) {
      if (p_ == end_) fail("unterminated string");
      const char c = *p_++;
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (static_cast<unsigned char>(c) >= 0x80) {
        take_utf8(out);
        continue;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ == end_) fail("unterminated escape");
      const char e = *p_++;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xd800 && cp < 0xdc00) {  // surrogate pair
            if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u') fail("unpaired surrogate in a \\u escape");
            p_ += 2;
            const uint32_t low = parse_hex4();
            if (low < 0xdc00 || low >= 0xe000) fail("bad low surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            fail("unpaired surrogate in a \\u escape");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape \\") + e);
      }
    }
  }

  void parse_number(JsonValue& v) {
    const char* start = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ == end_ || *p_ < '0' || *p_ > '9') fail("unexpected character");
    bool integral = true;
    while (p_ < end_ && ((*p_ >= '0' && *p_ <= '9') || *p_ == '.' || *p_ == 'e' || *p_ == 'E' || *p_ == '+' ||
                         *p_ == '-')) {
      if (*p_ == '.' || *p_ == 'e' || *p_ == 'E') integral = false;
      ++p_;
    }
    const std::string literal(start, p_);
    if (literal.size() > 64) fail("number literal too long");
    char* parsed_end = nullptr;
    v.kind = JsonValue::Kind::Number;
    v.number = std::strtod(literal.c_str(), &parsed_end);
    if (parsed_end != literal.c_str() + literal.size()) fail("malformed number " + literal);
    if (integral) {
      errno = 0;
      const long long i = std::strtoll(literal.c_str(), nullptr, 10);
      if (errno == 0) {
        v.is_integer = true;
        v.integer = i;
      }
    }
  }

  const char* p_;
  const char* begin_;
  const char* end_;
  const std::string& what_;
  size_t values_ = 0;
};

}  // namespace

const JsonValue* JsonValue::find(const std::string& key) const {
  for (const auto& [k, v] : members) {
    if (k == key) return &v;
  }
  return nullptr;
}

JsonValue parse_json(const char* text, size_t size, const std::string& what) {
  return Parser(text, size, what).parse_document();
}

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace peft::io
