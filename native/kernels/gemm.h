// General matrix product with optional transposes, f32 or bf16 operands, f32 accumulation:
//   C[M,N] = alpha * op(A)[M,K] · op(B)[K,N]  (+ C when accumulate)
// A linear layer's three products are y = x·Wᵀ (transB), dx = dy·W, dW = dyᵀ·x (transA).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace peft::kernels {

// A row-major matrix operand. Not transposed: element (i, j) of op(X) is at data[i * ld + j];
// transposed: at data[j * ld + i].
struct MatrixRef {
  const void* data;
  DType dtype;  // F32 or BF16
  int64_t ld;   // leading dimension (row stride) of the stored matrix, in elements
  bool trans;
};

// c: [M, ldc] f32 (row stride ldc >= N). Multithreaded over the process pool.
void gemm(int64_t M, int64_t N, int64_t K, const MatrixRef& a, const MatrixRef& b, float* c, int64_t ldc,
          float alpha, bool accumulate);

// One product of a sum: alpha · op(a)[M, k] · op(b)[k, N].
struct GemmTerm {
  MatrixRef a;
  MatrixRef b;
  int64_t k;
  float alpha;
};

// C[M,N] = Σ terms (+ C when accumulate), in one blocked pass: each later term runs as more K
// blocks over the same output tiles, so C is written once per block rather than once per term.
// The fused LoRA linear adds its rank-r term to x·Wᵀ this way.
void gemm_sum(int64_t M, int64_t N, const GemmTerm* terms, int n_terms, float* c, int64_t ldc, bool accumulate);

}  // namespace peft::kernels
