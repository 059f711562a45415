// 4-bit weights of a native model across N-API: the constructor's `quantized` argument and the
// model's live 4-bit weights (they change when an adapter is merged into them). One weight is
//   { data: u8 [ceil(n/2)], absmax: f32 [blocks] (u8 codes when nested), quantMap: f32 [16], blocksize,
//     nestedAbsmax?: f32, nestedQuantMap?: f32 [256], nestedBlocksize?, offset?,
//     shape: [out, in], quantType: 'nf4' | 'fp4', dtype: source dtype, computeDtype: 'f32' | 'bf16' }
#pragma once
#include <napi.h>

#include "model/adapter_host.h"
#include "nn/quant_weight.h"

namespace peft::binding {

// { name: weight } (or undefined: none) → the model constructor's 4-bit weights, each validated.
nn::QuantWeightMap to_quant_weights(const Napi::Value& v, const std::string& what);
// quantizedWeights() -> { name: weight } for the parameters that are 4-bit now (their own tensors).
Napi::Value quantized_weights(model::AdapterHost& m, const Napi::CallbackInfo& info);

}  // namespace peft::binding
