// Fused LoRA linear built from the blocked GEMM. The update goes through the rank-r bottleneck
// (x·Aᵀ, then ·Bᵀ), costing 2·m·r·(k + n) extra FLOPs instead of forming the n×k matrix B·A.
#include "kernels/lowrank.h"

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

void lowrank_forward(const LowRankShape& s, const void* x, DType x_dtype, const void* w, DType w_dtype,
                     const float* a, const float* b, float scale, float* y, float* xa) {
  check_shape(s);
  const MatrixRef xr{x, x_dtype, s.k, false};
  // xa[m, r] = x[m, k] · A[r, k]ᵀ
  gemm(s.m, s.r, s.k, xr, MatrixRef{a, DType::F32, s.k, true}, xa, s.r, 1.0f, false);
  // y[m, n] = x · W[n, k]ᵀ + scale · xa · B[n, r]ᵀ, one pass over y
  const GemmTerm terms[2] = {{xr, MatrixRef{w, w_dtype, s.k, true}, s.k, 1.0f},
                             {MatrixRef{xa, DType::F32, s.r, false}, MatrixRef{b, DType::F32, s.r, true}, s.r, scale}};
  gemm_sum(s.m, s.n, terms, 2, y, s.n, false);
}

void lowrank_backward(const LowRankShape& s, const float* dy, const void* x, DType x_dtype, const float* xa,
                      const void* w, DType w_dtype, const float* a, const float* b, float scale, float* dx,
                      float* da, float* db, float* workspace, bool accumulate_grads) {
  check_shape(s);
  const MatrixRef dy_ref{dy, DType::F32, s.n, false};
  // dB[n, r] (+)= scale · dy[m, n]ᵀ · xa[m, r]
  gemm(s.n, s.r, s.m, MatrixRef{dy, DType::F32, s.n, true}, MatrixRef{xa, DType::F32, s.r, false}, db, s.r, scale,
       accumulate_grads);
  // g[m, r] = scale · dy · B[n, r]
  float* g = workspace;
  gemm(s.m, s.r, s.n, dy_ref, MatrixRef{b, DType::F32, s.r, false}, g, s.r, scale, false);
  // dA[r, k] (+)= g[m, r]ᵀ · x[m, k]
  gemm(s.r, s.k, s.m, MatrixRef{g, DType::F32, s.r, true}, MatrixRef{x, x_dtype, s.k, false}, da, s.k, 1.0f,
       accumulate_grads);
  if (dx != nullptr) {
    // dx[m, k] = dy · W[n, k] + g · A[r, k], one pass over dx
    const GemmTerm terms[2] = {{dy_ref, MatrixRef{w, w_dtype, s.k, false}, s.n, 1.0f},
                               {MatrixRef{g, DType::F32, s.r, false}, MatrixRef{a, DType::F32, s.k, false}, s.r, 1.0f}};
    gemm_sum(s.m, s.k, terms, 2, dx, s.k, false);
  }
}

}  // namespace peft::kernels
