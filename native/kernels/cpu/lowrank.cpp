// The LoRA branch and the LoRA linear built from the blocked GEMM. The update goes through the rank-r
// bottleneck (x·Aᵀ, then ·Bᵀ), costing 2·m·r·(k + n) extra FLOPs instead of forming the n×k matrix B·A.
#include "kernels/lowrank.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace peft::kernels {

namespace {
void check_shape(const LowRankShape& s) {
  PEFT_CHECK(s.m >= 0 && s.n >= 0 && s.k >= 0 && s.r >= 1, ErrorCode::Shape,
             "Expected m, n, k >= 0 and rank >= 1 for the low-rank linear but received m=" + std::to_string(s.m) +
                 " n=" + std::to_string(s.n) + " k=" + std::to_string(s.k) + " r=" + std::to_string(s.r));
}
}  // namespace

void lora_branch_forward(int64_t m, int64_t n, int64_t k, int64_t r, const void* x, DType x_dtype, const float* a,
                         const float* b, float scale, float* xa, float* y, int64_t ldy, bool accumulate_y) {
  // xa[m, r] = x[m, k] · A[r, k]ᵀ; y[m, n] (+)= scale · xa · B[n, r]ᵀ
  gemm(m, r, k, MatrixRef{x, x_dtype, k, false}, MatrixRef{a, DType::F32, k, true}, xa, r, 1.0f, false);
  gemm(m, n, r, MatrixRef{xa, DType::F32, r, false}, MatrixRef{b, DType::F32, r, true}, y, ldy, scale, accumulate_y);
}

void lora_branch_backward(int64_t m, int64_t n, int64_t k, int64_t r, const float* dy, const void* x, DType x_dtype,
                          const float* xa, const float* a, const float* b, float scale, float* g, float* da, float* db,
                          float* dx, bool accumulate_dx) {
  // dB[n, r] += scale · dy[m, n]ᵀ · xa[m, r]; g[m, r] = scale · dy · B[n, r]
  if (db) gemm(n, r, m, MatrixRef{dy, DType::F32, n, true}, MatrixRef{xa, DType::F32, r, false}, db, r, scale, true);
  gemm(m, r, n, MatrixRef{dy, DType::F32, n, false}, MatrixRef{b, DType::F32, r, false}, g, r, scale, false);
  // dA[r, k] += g[m, r]ᵀ · x[m, k]; dx[m, k] (+)= g · A[r, k]
  if (da) gemm(r, k, m, MatrixRef{g, DType::F32, r, true}, MatrixRef{x, x_dtype, k, false}, da, k, 1.0f, true);
  if (dx) gemm(m, k, r, MatrixRef{g, DType::F32, r, false}, MatrixRef{a, DType::F32, k, false}, dx, k, 1.0f, accumulate_dx);
}

void lowrank_forward(const LowRankShape& s, const void* x, DType x_dtype, const void* w, DType w_dtype,
                     const float* a, const float* b, float scale, float* y, float* xa) {
  check_shape(s);
  // y[m, n] = x · W[n, k]ᵀ, then the branch adds scale · xa · Bᵀ
  gemm(s.m, s.n, s.k, MatrixRef{x, x_dtype, s.k, false}, MatrixRef{w, w_dtype, s.k, true}, y, s.n, 1.0f, false);
  lora_branch_forward(s.m, s.n, s.k, s.r, x, x_dtype, a, b, scale, xa, y, s.n, true);
}

void lowrank_backward(const LowRankShape& s, const float* dy, const void* x, DType x_dtype, const float* xa,
                      const void* w, DType w_dtype, const float* a, const float* b, float scale, float* dx,
                      float* da, float* db, float* workspace, bool accumulate_grads) {
  check_shape(s);
  if (!accumulate_grads) {
    std::fill(da, da + s.r * s.k, 0.0f);
    std::fill(db, db + s.n * s.r, 0.0f);
  }
  // dx[m, k] = dy · W[n, k], then the branch adds g · A
  if (dx != nullptr)
    gemm(s.m, s.k, s.n, MatrixRef{dy, DType::F32, s.n, false}, MatrixRef{w, w_dtype, s.k, false}, dx, s.k, 1.0f, false);
  lora_branch_backward(s.m, s.n, s.k, s.r, dy, x, x_dtype, xa, a, b, scale, workspace, da, db, dx, true);
}

void dora_combine_forward(int64_t rows, int64_t n, const float* mag, const float* norm, const float* base,
                          const float* lora, float* y) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t o = 0; o < n; ++o) {
      const float g = mag[o] / norm[o];
      y[i * n + o] += (g - 1.0f) * base[i * n + o] + g * lora[i * n + o];
    }
}

void dora_combine_backward(int64_t rows, int64_t n, const float* mag, const float* norm, const float* dy,
                           const float* base, const float* lora, float* d_lora, float* d_base, float* gm) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t o = 0; o < n; ++o) {
      const int64_t k = i * n + o;
      const float gain = mag[o] / norm[o];
      if (gm) gm[o] += dy[k] * (base[k] + lora[k]) / norm[o];
      d_lora[k] = dy[k] * gain;
      d_base[k] = dy[k] * (gain - 1.0f);
    }
}

}  // namespace peft::kernels
