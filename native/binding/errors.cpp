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

void fail_argument(const std::string& message) { throw peft::Error(ErrorCode::Argument, message); }

}  // namespace peft::binding
