// peft::Error: the one error type native code throws. The binding turns it into a JS PeftError
// with the same code; nothing in native code aborts or exits the process.
#pragma once
#include <stdexcept>
#include <string>

namespace peft {

// Stable codes shared with lib/errors.ts.
enum class ErrorCode {
  Shape,        // E_SHAPE: tensor shapes do not fit together
  DType,        // E_DTYPE: unsupported or mismatched element type
  Argument,     // E_ARGUMENT: a missing or wrong-typed argument
  Range,        // E_RANGE: a number outside its allowed range
  Format,       // E_FORMAT: a malformed file or buffer
  IO,           // E_IO: reading or writing a file failed
  Config,       // E_CONFIG: an invalid configuration
  Busy,         // E_BUSY: the object is in use by a running call
  Disposed,     // E_DISPOSED: the object was already disposed
  Unsupported,  // E_UNSUPPORTED: not available on this CPU or build
  Memory,       // E_MEMORY: an allocation failed
  NonFinite,    // E_NONFINITE: NaN or infinity where finite numbers are required
  Internal,     // E_INTERNAL: a bug; please report it
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  const char* code_name() const { return error_code_name(code_); }

 private:
  ErrorCode code_;
};

// Throws Error(code, message) when cond is false. message is only built on failure.
#define PEFT_CHECK(cond, code, message_expr)                       \
  do {                                                             \
    if (!(cond)) throw ::peft::Error((code), (message_expr));     \
  } while (0)

}  // namespace peft
