// The addon's entry point: registers the tensor class, the ops, the runtime controls and the file readers.
#include <napi.h>

#include "binding/errors.h"
#include "binding/tensor_wrap.h"

namespace peft::binding {

void register_gemm_ops(Napi::Env env, Napi::Object exports);
void register_optim_ops(Napi::Env env, Napi::Object exports);
void register_elementwise_ops(Napi::Env env, Napi::Object exports);
void register_norm_ops(Napi::Env env, Napi::Object exports);
void register_rope_ops(Napi::Env env, Napi::Object exports);
void register_activation_ops(Napi::Env env, Napi::Object exports);
void register_loss_ops(Napi::Env env, Napi::Object exports);
void register_embedding_ops(Napi::Env env, Napi::Object exports);
void register_runtime(Napi::Env env, Napi::Object exports);
void register_safetensors(Napi::Env env, Napi::Object exports);
void register_attention_ops(Napi::Env env, Napi::Object exports);
void register_gguf(Napi::Env env, Napi::Object exports);
void register_llama(Napi::Env env, Napi::Object exports);
void register_quant_ops(Napi::Env env, Napi::Object exports);
void register_ggml_ops(Napi::Env env, Napi::Object exports);
void register_lora_batch_ops(Napi::Env env, Napi::Object exports);
void register_finite_ops(Napi::Env env, Napi::Object exports);

Napi::Object init_addon(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());  // one per environment: worker_threads each get their own
  exports.Set("NativeTensor", TensorWrap::define(env));
  register_gemm_ops(env, exports);
  register_optim_ops(env, exports);
  register_elementwise_ops(env, exports);
  register_norm_ops(env, exports);
  register_rope_ops(env, exports);
  register_activation_ops(env, exports);
  register_loss_ops(env, exports);
  register_embedding_ops(env, exports);
  register_runtime(env, exports);
  register_safetensors(env, exports);
  register_attention_ops(env, exports);
  register_gguf(env, exports);
  register_llama(env, exports);
  register_quant_ops(env, exports);
  register_ggml_ops(env, exports);
  register_lora_batch_ops(env, exports);
  register_finite_ops(env, exports);
  return exports;
}

}  // namespace peft::binding

static Napi::Object init_peft_native(Napi::Env env, Napi::Object exports) {
  return peft::binding::init_addon(env, exports);
}

NODE_API_MODULE(peft_native, init_peft_native)
