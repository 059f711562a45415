#include "binding/errors.h"

namespace peft::binding {

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Error make_error(Napi::Env env, const char* code, const std::string& message) {
  AddonData& data = addon_data(env);
  if (!data.error_class.IsEmpty()) {
    Napi::Object err = data.error_class.New({Napi::String::New(env, message), Napi::String::New(env, code)});
    return Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

bool js_reachable(napi_env env) {
  // Setting a property goes through the checks every JS-running N-API call makes (no pending
  // exception, the environment can still call into JS); creating the object does not.
  napi_handle_scope scope = nullptr;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return false;
  napi_value object = nullptr, value = nullptr;
  const bool ok = napi_create_object(env, &object) == napi_ok && napi_get_boolean(env, true, &value) == napi_ok &&
                  napi_set_named_property(env, object, "probe", value) == napi_ok;
  napi_close_handle_scope(env, scope);
  return ok;
}

void fail_argument(const std::string& message) { throw peft::Error(ErrorCode::Argument, message); }

}  // namespace peft::binding
