// Small helpers shared by the linear layer's files: matrix operands for the GEMM and row-wise
// vector arithmetic.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm.h"

namespace peft::nn {

inline kernels::MatrixRef matrix(const Tensor& t, bool trans) { return {t.data(), t.dtype(), t.dim(-1), trans}; }
inline kernels::MatrixRef matrix(const float* data, int64_t cols, bool trans) { return {data, DType::F32, cols, trans}; }

// A weight [rows, cols] (f32 or bf16) as f32.
std::vector<float> weight_as_f32(const Tensor& w);
// Writes f32 values back into a weight of either dtype (bf16 rounds to nearest even).
void store_weight(Tensor& w, const std::vector<float>& values);

}  // namespace peft::nn
