// The serving calls of a native decoder (see DecoderModel::serve_step): KV cache slots, registered
// adapters and the batched step. Each takes the model's state and the call's arguments.
#pragma once
#include <napi.h>

#include <memory>

#include "binding/model_state.h"

namespace peft::binding {

Napi::Value serve_open(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info);
Napi::Value serve_close(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info);
Napi::Value serve_length(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info);
Napi::Value serve_add_adapter(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info);
Napi::Value serve_remove_adapter(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info);
Napi::Value serve_step_async(const std::shared_ptr<ModelState>& state, const Napi::CallbackInfo& info);

}  // namespace peft::binding
