// Packing of GEMM operands into the register tile's panel layout (see variants.h), with the
// operand's transpose and dtype conversion folded in. Rows or columns past the edge and the odd
// last K of a bf16 pair are zero-filled, so the tile kernel never needs edge cases.
#pragma once
#include <cstdint>

#include "kernels/cpu/variants.h"
#include "kernels/gemm.h"

namespace peft::kernels::cpu {

// Rounds kc up to a whole number of k groups.
inline int64_t padded_k(const GemmMicroKernel& kern, int64_t kc) {
  return (kc + kern.k_group - 1) / kern.k_group * kern.k_group;
}

// Packs op(A)[m0 : m0+mc, k0 : k0+kc] as ceil(mc/mr) slivers of padded_k(kc)·mr elements.
void pack_a(const GemmMicroKernel& kern, const MatrixRef& a, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
            void* dst);
// Packs op(B)[k0 : k0+kc, n0 : n0+nc] as ceil(nc/nr) slivers of padded_k(kc)·nr elements.
void pack_b(const GemmMicroKernel& kern, const MatrixRef& b, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
            void* dst);

}  // namespace peft::kernels::cpu
