// Low-rank (LoRA) linear layer, fused: the rank-r update is applied through the r-dimensional
// bottleneck and B·A is never formed.
//   forward:  xa = x·Aᵀ;  y = x·Wᵀ + scale · xa·Bᵀ
//   backward: g = scale · dy·B;  dB = scale · dyᵀ·xa;  dA = gᵀ·x;  dx = dy·W + g·A
#pragma once
#include <cstdint>

#include "kernels/gemm.h"

namespace peft::kernels {

struct LowRankShape {
  int64_t m;  // rows of x (batch × sequence)
  int64_t n;  // output features
  int64_t k;  // input features
  int64_t r;  // rank
};

// x: [m, k] (f32/bf16); w: [n, k] (f32/bf16); a: [r, k] f32; b: [n, r] f32.
// Outputs: y: [m, n] f32; xa: [m, r] f32 (kept for the backward).
void lowrank_forward(const LowRankShape& s, const void* x, DType x_dtype, const void* w, DType w_dtype,
                     const float* a, const float* b, float scale, float* y, float* xa);

// dy: [m, n] f32; x: [m, k]; xa: [m, r] f32; w: [n, k]; a: [r, k]; b: [n, r].
// Outputs: dx: [m, k] f32 or null (not needed); da: [r, k]; db: [n, r].
// workspace: [m, r] f32 scratch. accumulate_grads adds into da/db (gradient accumulation).
void lowrank_backward(const LowRankShape& s, const float* dy, const void* x, DType x_dtype, const float* xa,
                      const void* w, DType w_dtype, const float* a, const float* b, float scale, float* dx,
                      float* da, float* db, float* workspace, bool accumulate_grads);

}  // namespace peft::kernels
