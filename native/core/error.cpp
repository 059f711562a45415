#include "core/error.h"

namespace peft {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::Shape: return "E_SHAPE";
    case ErrorCode::DType: return "E_DTYPE";
    case ErrorCode::Argument: return "E_ARGUMENT";
    case ErrorCode::Range: return "E_RANGE";
    case ErrorCode::Format: return "E_FORMAT";
    case ErrorCode::IO: return "E_IO";
    case ErrorCode::Config: return "E_CONFIG";
    case ErrorCode::Busy: return "E_BUSY";
    case ErrorCode::Disposed: return "E_DISPOSED";
    case ErrorCode::Unsupported: return "E_UNSUPPORTED";
    case ErrorCode::Memory: return "E_MEMORY";
    case ErrorCode::NonFinite: return "E_NONFINITE";
    case ErrorCode::Internal: return "E_INTERNAL";
  }
  return "E_INTERNAL";
}

}  // namespace peft
