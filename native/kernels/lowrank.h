// Low-rank (LoRA) linear layer: the rank-r update is applied through the r-dimensional bottleneck
// and B·A is never formed. The branch functions are the one LoRA implementation: nn::Linear calls
// them for each adapter's rows (with dropout and DoRA around them), and the fused layer below
// (ops.lowrankForward / lowrankBackward) is the base product plus the branch.
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

// The branch: x: [m, k] (f32/bf16); a: [r, k] f32; b: [n, r] f32. Outputs: xa: [m, r] = x·Aᵀ; y:
// [m, n] at row stride ldy, = (or += when accumulate_y) scale · xa·Bᵀ.
void lora_branch_forward(int64_t m, int64_t n, int64_t k, int64_t r, const void* x, DType x_dtype, const float* a,
                         const float* b, float scale, float* xa, float* y, int64_t ldy, bool accumulate_y);
// Its backward: dy: [m, n] f32; x: [m, k] the forward's input (read only when da is wanted); xa: [m, r].
// Outputs: g: [m, r] = scale · dy·B (scratch the caller may reuse); db: [n, r] += scale · dyᵀ·xa, da:
// [r, k] += gᵀ·x, dx: [m, k] (+)= g·A; each null when not wanted.
void lora_branch_backward(int64_t m, int64_t n, int64_t k, int64_t r, const float* dy, const void* x, DType x_dtype,
                          const float* xa, const float* a, const float* b, float scale, float* g, float* da, float* db,
                          float* dx, bool accumulate_dx);

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

// DoRA's output, per element with g = mag[o] / norm[o]: y[i, o] += (g − 1)·base[i, o] + g·lora[i, o].
// base, lora, y: [rows, n]; mag, norm: [n].
void dora_combine_forward(int64_t rows, int64_t n, const float* mag, const float* norm, const float* base,
                          const float* lora, float* y);
// Its backward: d_lora = dy·g, d_base = dy·(g − 1), and gm[o] += Σ_i dy·(base + lora) / norm[o]
// when gm is not null. dy, base, lora, d_lora, d_base: [rows, n].
void dora_combine_backward(int64_t rows, int64_t n, const float* mag, const float* norm, const float* dy,
                           const float* base, const float* lora, float* d_lora, float* d_base, float* gm);

}  // namespace peft::kernels
