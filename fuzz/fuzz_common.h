// Shared by the libFuzzer targets: what counts as a finding besides a sanitizer report.
// A reader may refuse input only with peft::Error of an expected code; any other exception escapes
// LLVMFuzzerTestOneInput (libFuzzer reports it as a crash), and a broken invariant traps.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "core/error.h"

namespace peft::fuzz {

// Stops with a message libFuzzer keeps next to the crashing input.
[[noreturn]] inline void finding(const char* what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what);
  std::abort();
}

#define FUZZ_ASSERT(cond)                                   \
  do {                                                      \
    if (!(cond)) ::peft::fuzz::finding("assertion " #cond); \
  } while (0)

// PEFT_FUZZ_VERBOSE=1: each input's outcome on stderr (to check seeds and replay findings).
inline bool verbose() {
  static const bool on = std::getenv("PEFT_FUZZ_VERBOSE") != nullptr;
  return on;
}

inline void report_refusal(const peft::Error& e) {
  if (verbose()) std::fprintf(stderr, "refused (%s): %s\n", e.code_name(), e.what());
}

// A refusal with a code outside `allowed` is a finding too (e.g. E_INTERNAL, E_SHAPE from a reader).
inline void expect_code(const peft::Error& e, std::initializer_list<peft::ErrorCode> allowed) {
  report_refusal(e);
  for (peft::ErrorCode c : allowed) {
    if (e.code() == c) return;
  }
  std::fprintf(stderr, "fuzz finding: unexpected %s: %s\n", e.code_name(), e.what());
  std::abort();
}

// Reads every byte (a sanitizer then sees a view that reaches past its buffer).
inline unsigned touch(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  unsigned acc = 0;
  for (size_t i = 0; i < n; ++i) acc += p[i];
  return acc;
}

}  // namespace peft::fuzz
