#pragma once
#include <new>

#include "core/error.h"

namespace peft::binding {

template <typename Body>
Napi::Value guarded(const Napi::CallbackInfo& info, Body body) {
  Napi::Env env = info.Env();
  try {
    try {
      return body();
    } catch (const Napi::Error&) {
      throw;  // already a JS exception
    } catch (const peft::Error& e) {
      throw make_error(env, e.code_name(), e.what());
    } catch (const std::bad_alloc&) {
      throw make_error(env, "E_MEMORY", "Out of memory");
    } catch (const std::exception& e) {
      throw make_error(env, "E_INTERNAL", std::string("Internal error: ") + e.what());
    }
  } catch (const Napi::Error&) {
    // A terminated worker_thread: no JS left to throw to (see js_reachable); answer nothing.
    if (!js_reachable(env)) return Napi::Value();
    throw;
  }
}

}  // namespace peft::binding
