// The adapter half of the native model object: attaching LoRA / DoRA / IA3 / prompt adapters,
// choosing which apply, freezing parameters, merging. Called from model_llama.cpp with the model
// leased (no call runs on it meanwhile).
#pragma once
#include <napi.h>

#include "model/adapter_host.h"

namespace peft::binding {

// addLora(module, adapter, A [r, in], B [out, r], magnitude [out] | null, { scaling, dropout, useDora })
Napi::Value add_lora(model::AdapterHost& m, const Napi::CallbackInfo& info);
// addEmbeddingLora(adapter, A [r, vocab], B [hidden, r], scaling)
Napi::Value add_embedding_lora(model::AdapterHost& m, const Napi::CallbackInfo& info);
// addIa3(module, adapter, vector [in] | [out], feedforward)
Napi::Value add_ia3(model::AdapterHost& m, const Napi::CallbackInfo& info);
// addBottleneck(layer, site 'attn' | 'mlp', adapter, down [b, H], downBias [b], up [H, b], upBias [H],
//               { nonLinearity, scaling, parallel })
Napi::Value add_bottleneck(model::AdapterHost& m, const Napi::CallbackInfo& info);
// addPrefix(adapter, kv [tokens, layers · 2 · kv_heads · head_dim]) / prefixLength()
Napi::Value add_prefix(model::AdapterHost& m, const Napi::CallbackInfo& info);
Napi::Value prefix_length(model::AdapterHost& m, const Napi::CallbackInfo& info);
// addPrompt(adapter, embeddings [tokens, hidden])
Napi::Value add_prompt(model::AdapterHost& m, const Napi::CallbackInfo& info);
// deleteAdapter(adapter, keepMerged?)
Napi::Value delete_adapter(model::AdapterHost& m, const Napi::CallbackInfo& info);
// setSelection({ enabled, active: string[], perRow: string[] | null, seed, dropout = true })
Napi::Value set_selection(model::AdapterHost& m, const Napi::CallbackInfo& info);
// setTrainable(name, trainable)
Napi::Value set_trainable(model::AdapterHost& m, const Napi::CallbackInfo& info);
// setParameterValue(name, tensor): the parameter's storage becomes `tensor` (same shape and dtype)
Napi::Value set_parameter_value(model::AdapterHost& m, const Napi::CallbackInfo& info);
// parameters() -> [{ name, tensor, trainable, quantized?, numel? }] (a 4-bit weight's tensor is its packed
// codes; numel is the weight's own element count)
Napi::Value parameters(model::AdapterHost& m, const Napi::CallbackInfo& info);
// grads() -> { name: Tensor } for the trainable parameters (the buffers themselves, rewritten by each backward)
Napi::Value grads(model::AdapterHost& m, const Napi::CallbackInfo& info);
// linearModules() -> [{ name, inFeatures, outFeatures, bias, quantized }]
Napi::Value linear_modules(model::AdapterHost& m, const Napi::CallbackInfo& info);
// setCheckpointing(on): activation checkpointing for training
Napi::Value set_checkpointing(model::AdapterHost& m, const Napi::CallbackInfo& info);
// mergeAdapter(adapter, { requantize }?) / unmergeAdapter(adapter): every layer holding it (requantize,
// default true: a 4-bit weight stays 4-bit; false: it becomes dense, see nn::Linear::merge)
Napi::Value merge_adapter(model::AdapterHost& m, const Napi::CallbackInfo& info, bool merge);

}  // namespace peft::binding
