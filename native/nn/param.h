// A named parameter: its value, whether it trains, and (only when it trains) its gradient. Frozen
// parameters never get gradient memory: that is most of PEFT's memory saving.
#pragma once
#include <memory>
#include <string>

#include "core/tensor.h"

namespace peft::nn {

struct QuantWeight;  // nn/quant_weight.h

struct Param {
  Param(std::string name, std::shared_ptr<Tensor> value) : name(std::move(name)), value(std::move(value)) {}

  std::string name;
  std::shared_ptr<Tensor> value;
  bool trainable = false;
  // Where it enters the network, counted from the input (model/param_depth.h): the backward stops
  // below the lowest parameter that trains. Set by the model that registers it.
  int depth = 0;
  std::shared_ptr<Tensor> grad;  // f32, value's shape; allocated by grad_data() on first use
  // A 4-bit weight (QLoRA's frozen base): `value` is then its packed codes, u8 [ceil(n/2)], and
  // `quant` has the scales, code tables and the weight's own shape. Null for dense parameters.
  std::shared_ptr<QuantWeight> quant;

  // The gradient buffer, allocated zero-filled the first time; null when the parameter is frozen,
  // so callers skip the work of a gradient nobody wants.
  float* grad_data();
  void zero_grad();  // keeps the buffer, fills it with zeros
  const float* data() const { return value->data_as<float>(); }
  float* mutable_data() { return value->data_as<float>(); }
};

using ParamPtr = std::shared_ptr<Param>;

}  // namespace peft::nn
