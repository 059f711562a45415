// Turning native failures into JS PeftErrors, and the addon's per-environment data.
#pragma once
#include <napi.h>

#include <string>

namespace peft::binding {

struct AddonData {
  Napi::FunctionReference error_class;  // lib/errors.ts PeftError, registered by lib/native.ts
  Napi::FunctionReference tensor_class;
};

AddonData& addon_data(Napi::Env env);

// A PeftError (or, before registration, an Error with .code) carrying code and message.
Napi::Error make_error(Napi::Env env, const char* code, const std::string& message);

// Runs body; a peft::Error, std::bad_alloc or other std::exception becomes a thrown JS PeftError.
// Every binding entry point goes through this, so no C++ exception crosses into N-API.
template <typename Body>
Napi::Value guarded(const Napi::CallbackInfo& info, Body body);

// Whether JS can run in env now. False while the environment shuts down (a worker_thread being
// terminated): nothing can be thrown or returned to it then, and a Napi::Error thrown on out of a
// callback would end the whole process (std::terminate).
bool js_reachable(napi_env env);

// Throws a peft::Error of code E_ARGUMENT with message.
[[noreturn]] void fail_argument(const std::string& message);

}  // namespace peft::binding

#include "binding/errors_inl.h"
