// The small-M path of gemm_sum: with only a few rows of A (a decode step's y = x·Wᵀ), packing B
// costs more than the product, which is bound by reading the weight once. These sums skip the
// packing and stream op(B) straight through the GemvSpans loops, split over the pool by columns.
#pragma once
#include <cstdint>

#include "kernels/gemm.h"

namespace peft::kernels::cpu {

// The largest M that gemm_sum hands to gemv_sum: the measured crossover with the packed path, or
// PEFT_GEMV_MAX_ROWS (0 turns the path off; at most kGemvMaxRows), read once.
int64_t gemv_max_rows();

// C[M, N] = Σ terms (+ C when accumulate), as gemm_sum; the operands are already checked.
// 1 <= M <= kGemvMaxRows, N >= 1.
void gemv_sum(int64_t M, int64_t N, const GemmTerm* terms, int n_terms, float* c, int64_t ldc, bool accumulate);

}  // namespace peft::kernels::cpu
