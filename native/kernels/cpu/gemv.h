// The small-M path of gemm_sum: with only a few rows of A (a decode step's y = x·Wᵀ), packing B
// costs more than the product, which is bound by reading the weight once. These sums skip the
// packing and stream op(B) straight through the GemvSpans loops, split over the pool by columns.
#pragma once
#include <cstdint>

#include "kernels/gemm.h"

namespace peft::kernels::cpu {

// Whether gemm_sum should hand this sum to gemv_sum: M up to the measured crossover with the
// packed path, which depends on B's layout; PEFT_GEMV_MAX_ROWS=N (read once) sets one limit for
// both, 0 turning the path off.
bool gemv_applies(int64_t M, const GemmTerm* terms, int n_terms);

// C[M, N] = Σ terms (+ C when accumulate), as gemm_sum; the operands are already checked.
// M >= 1 (rows of A go through the loops kGemvMaxRows at a time), N >= 1.
void gemv_sum(int64_t M, int64_t N, const GemmTerm* terms, int n_terms, float* c, int64_t ldc, bool accumulate);

}  // namespace peft::kernels::cpu
