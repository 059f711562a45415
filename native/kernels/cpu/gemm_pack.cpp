#include "kernels/cpu/gemm_pack.h"

#include <cstring>

namespace peft::kernels::cpu {

namespace {

// Reads element (row, col) of a logical matrix whose storage may be transposed.
// "rows" here are the outer index of the panel (M for A, N for B), "cols" the K index.
struct OperandView {
  const MatrixRef& ref;
  bool k_is_contiguous;  // stored with K as the fast index for this operand

  // Pointer-stride description: element (outer, k) at data[outer * outer_stride + k * k_stride].
  int64_t outer_stride() const { return k_is_contiguous ? ref.ld : 1; }
  int64_t k_stride() const { return k_is_contiguous ? 1 : ref.ld; }
};

inline float load_f32(const MatrixRef& ref, int64_t index) {
  if (ref.dtype == DType::F32) return static_cast<const float*>(ref.data)[index];
  return bf16_to_f32(static_cast<const uint16_t*>(ref.data)[index]);
}

inline uint16_t load_bf16(const MatrixRef& ref, int64_t index) {
  if (ref.dtype == DType::BF16) return static_cast<const uint16_t*>(ref.data)[index];
  return f32_to_bf16(static_cast<const float*>(ref.data)[index]);
}

// Index of element (outer i, k) inside a sliver of `width`: f32 panels are [k][width],
// bf16 panels are [k / 2][width][2].
inline int64_t sliver_index(bool pairs, int width, int64_t i, int64_t k) {
  return pairs ? (k >> 1) * width * 2 + i * 2 + (k & 1) : k * width + i;
}

template <typename Out, Out (*Load)(const MatrixRef&, int64_t)>
void pack_sliver(const OperandView& view, bool pairs, int64_t first_outer, int64_t valid, int64_t k0, int64_t kc,
                 int width, Out* out) {
  const int64_t os = view.outer_stride();
  const int64_t ks = view.k_stride();
  if (ks == 1) {  // K contiguous in memory: walk each row along K
    for (int64_t i = 0; i < valid; ++i) {
      const int64_t row = (first_outer + i) * os + k0;
      for (int64_t k = 0; k < kc; ++k) out[sliver_index(pairs, width, i, k)] = Load(view.ref, row + k);
    }
  } else {  // outer index contiguous: walk each K row across the sliver
    for (int64_t k = 0; k < kc; ++k) {
      const int64_t row = (k0 + k) * ks + first_outer;
      for (int64_t i = 0; i < valid; ++i) out[sliver_index(pairs, width, i, k)] = Load(view.ref, row + i);
    }
  }
}

// Packs `outer_count` rows of an operand into slivers of `width` (mr or nr).
void pack_panel(const GemmMicroKernel& kern, const OperandView& view, int64_t outer0, int64_t outer_count,
                int64_t k0, int64_t kc, int width, void* dst) {
  const int64_t kp = padded_k(kern, kc);
  const int64_t slivers = (outer_count + width - 1) / width;
  const bool pairs = kern.k_group == 2;
  for (int64_t s = 0; s < slivers; ++s) {
    const int64_t first = s * width;
    const int64_t valid = outer_count - first < width ? outer_count - first : width;
    if (!kern.bf16_panels) {
      float* out = static_cast<float*>(dst) + s * kp * width;
      if (valid < width) std::memset(out, 0, sizeof(float) * kp * width);
      pack_sliver<float, load_f32>(view, pairs, outer0 + first, valid, k0, kc, width, out);
    } else {
      uint16_t* out = static_cast<uint16_t*>(dst) + s * kp * width;
      if (valid < width || kp != kc) std::memset(out, 0, sizeof(uint16_t) * kp * width);
      pack_sliver<uint16_t, load_bf16>(view, pairs, outer0 + first, valid, k0, kc, width, out);
    }
  }
}

}  // namespace

void pack_a(const GemmMicroKernel& kern, const MatrixRef& a, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
            void* dst) {
  // op(A)[m, k]: stored A[m, k] (K contiguous) unless transposed.
  pack_panel(kern, OperandView{a, !a.trans}, m0, mc, k0, kc, kern.mr, dst);
}

void pack_b(const GemmMicroKernel& kern, const MatrixRef& b, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
            void* dst) {
  // op(B)[k, n]: stored B[k, n] (N contiguous) unless transposed, then B[n, k] (K contiguous).
  pack_panel(kern, OperandView{b, b.trans}, n0, nc, k0, kc, kern.nr, dst);
}

}  // namespace peft::kernels::cpu
