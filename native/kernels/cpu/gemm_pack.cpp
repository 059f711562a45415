#include "kernels/cpu/gemm_pack.h"

#include <cstring>

namespace peft::kernels::cpu {

namespace {

// Element (outer, k) of an operand as stored: data[outer * outer_stride + k * k_stride], where
// "outer" is M for A and N for B.
struct OperandView {
  const MatrixRef& ref;
  bool k_is_contiguous;  // stored with K as the fast index for this operand

  int64_t outer_stride() const { return k_is_contiguous ? ref.ld : 1; }
  int64_t k_stride() const { return k_is_contiguous ? 1 : ref.ld; }
};

// Element conversions from the stored dtype to the panel's.
struct Same {
  template <typename T>
  static T apply(T v) { return v; }
};
struct Bf16ToF32 {
  static float apply(uint16_t v) { return bf16_to_f32(v); }
};
struct F32ToBf16 {
  static uint16_t apply(float v) { return f32_to_bf16(v); }
};

// Packs `valid` outer rows starting at `src` (already offset to (first_outer, k0)) into one sliver.
// f32 panels are [k][width]; bf16-pair panels are [k / 2][width][2]. Typed loops, no per-element
// dtype branch, so the contiguous case compiles to vector copies.
template <typename Src, typename Out, typename Convert, bool Pairs>
void pack_sliver(const Src* src, int64_t os, int64_t ks, int64_t valid, int64_t kc, int width, Out* out) {
  if (ks == 1) {  // K contiguous in memory: walk each row along K
    for (int64_t i = 0; i < valid; ++i) {
      const Src* row = src + i * os;
      if (Pairs) {
        for (int64_t k = 0; k < kc; ++k) out[(k >> 1) * width * 2 + i * 2 + (k & 1)] = Convert::apply(row[k]);
      } else {
        for (int64_t k = 0; k < kc; ++k) out[k * width + i] = Convert::apply(row[k]);
      }
    }
  } else {  // outer index contiguous: each K row of the sliver is a contiguous run
    for (int64_t k = 0; k < kc; ++k) {
      const Src* row = src + k * ks;
      if (Pairs) {
        Out* dst = out + (k >> 1) * width * 2 + (k & 1);
        for (int64_t i = 0; i < valid; ++i) dst[i * 2] = Convert::apply(row[i]);
      } else {
        Out* dst = out + k * width;
        for (int64_t i = 0; i < valid; ++i) dst[i] = Convert::apply(row[i]);
      }
    }
  }
}

template <typename Src, typename Out, typename Convert, bool Pairs>
void pack_panel_typed(const GemmMicroKernel& kern, const OperandView& view, int64_t outer0, int64_t outer_count,
                      int64_t k0, int64_t kc, int width, Out* dst) {
  const int64_t kp = padded_k(kern, kc);
  const int64_t os = view.outer_stride();
  const int64_t ks = view.k_stride();
  const Src* base = static_cast<const Src*>(view.ref.data);
  const int64_t slivers = (outer_count + width - 1) / width;
  for (int64_t s = 0; s < slivers; ++s) {
    const int64_t first = s * width;
    const int64_t valid = outer_count - first < width ? outer_count - first : width;
    Out* out = dst + s * kp * width;
    // Zero the padding (rows past the edge, the odd K of the last pair) that the loops skip.
    if (valid < width || kp != kc) std::memset(out, 0, sizeof(Out) * kp * width);
    const Src* src = base + (outer0 + first) * os + k0 * ks;
    pack_sliver<Src, Out, Convert, Pairs>(src, os, ks, valid, kc, width, out);
  }
}

// An f32 operand stored K-contiguous into f32 slivers of `width`: whole slivers through the variant's
// transposing pack `rows`, a partial last one through the generic loop.
using PackRows = void (*)(const float* src, int64_t row_stride, int64_t kc, float* out);
void pack_rows_f32(const GemmMicroKernel& kern, PackRows rows, int width, const OperandView& view, int64_t outer0,
                   int64_t count, int64_t k0, int64_t kc, float* dst) {
  const int64_t kp = padded_k(kern, kc);
  const int64_t os = view.outer_stride();
  const float* base = static_cast<const float*>(view.ref.data) + outer0 * os + k0;
  const int64_t whole = count / width;
  for (int64_t s = 0; s < whole; ++s) rows(base + s * width * os, os, kc, dst + s * kp * width);
  if (whole * width < count) {
    pack_panel_typed<float, float, Same, false>(kern, view, outer0 + whole * width, count - whole * width, k0, kc,
                                                width, dst + whole * kp * width);
  }
}

// Copies `width` floats; a constant size for the tile widths in use, so the copy compiles to vector moves.
inline void copy_floats(float* dst, const float* src, int width) {
  switch (width) {
    case 16: std::memcpy(dst, src, 16 * sizeof(float)); break;
    case 6: std::memcpy(dst, src, 6 * sizeof(float)); break;
    case 32: std::memcpy(dst, src, 32 * sizeof(float)); break;
    case 12: std::memcpy(dst, src, 12 * sizeof(float)); break;
    default: std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(width));
  }
}

constexpr int64_t kPackRowsAhead = 4;  // rows of the source fetched ahead while packing

// An f32 operand stored with its outer index contiguous (op(B) stored [K, N], op(A) stored [K, M])
// into f32 slivers of `width`. The source is walked row by row, each K row scattered into the
// slivers, so every row is read front to back once: walking it sliver by sliver read 64 bytes from
// each of kc rows in turn and ran at about 1 GB/s from memory (a quarter of the head's dx GEMM).
// `whole_slivers` (optional) is the variant's vector pack for the whole slivers (pack_a_outer).
using PackOuter = void (*)(const float* src, int64_t ld, int64_t slivers, int64_t kc, int64_t sliver_stride, float* out);
void pack_outer_contiguous_f32(const GemmMicroKernel& kern, const OperandView& view, int64_t outer0, int64_t count,
                               int64_t k0, int64_t kc, int width, float* dst, PackOuter whole_slivers = nullptr) {
  const int64_t kp = padded_k(kern, kc);
  const int64_t ld = view.ref.ld;
  const float* base = static_cast<const float*>(view.ref.data) + k0 * ld + outer0;
  const int64_t whole = count / width;
  const int64_t rest = count - whole * width;
  const int64_t sliver = kp * width;
  if (rest) std::memset(dst + whole * sliver, 0, sizeof(float) * static_cast<size_t>(sliver));
  else if (kp != kc) for (int64_t s = 0; s < whole; ++s) std::memset(dst + s * sliver + kc * width, 0, sizeof(float) * (kp - kc) * width);
  if (whole_slivers != nullptr && whole > 0) {
    whole_slivers(base, ld, whole, kc, sliver, dst);
    if (rest)
      for (int64_t k = 0; k < kc; ++k)
        std::memcpy(dst + whole * sliver + k * width, base + k * ld + whole * width, sizeof(float) * static_cast<size_t>(rest));
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    const float* row = base + k * ld;
    // The rows are short runs (mc or nc floats) a long stride apart, which the hardware prefetchers
    // follow late: fetching four rows ahead made dW = dyᵀ·x (576 x 576 x 2048) 4% faster on AVX2.
    if (k + kPackRowsAhead < kc) {
      const float* ahead = row + kPackRowsAhead * ld;
      for (int64_t i = 0; i < count; i += 16) __builtin_prefetch(ahead + i);
      __builtin_prefetch(ahead + count - 1);
    }
    float* out = dst + k * width;
    for (int64_t s = 0; s < whole; ++s) copy_floats(out + s * sliver, row + s * width, width);
    if (rest) std::memcpy(out + whole * sliver, row + whole * width, sizeof(float) * static_cast<size_t>(rest));
  }
}

bool outer_contiguous_f32(const GemmMicroKernel& kern, const MatrixRef& x, bool k_contiguous) {
  return !k_contiguous && x.dtype == DType::F32 && !kern.bf16_panels;
}

bool rows_apply(const GemmMicroKernel& kern, PackRows rows, const MatrixRef& x, bool k_contiguous) {
  return rows != nullptr && k_contiguous && x.dtype == DType::F32 && !kern.bf16_panels;
}

// Packs `outer_count` rows of an operand into slivers of `width` (mr or nr).
void pack_panel(const GemmMicroKernel& kern, const OperandView& view, int64_t outer0, int64_t outer_count,
                int64_t k0, int64_t kc, int width, void* dst) {
  const bool f32_source = view.ref.dtype == DType::F32;
  if (!kern.bf16_panels) {
    float* out = static_cast<float*>(dst);
    if (f32_source) {
      pack_panel_typed<float, float, Same, false>(kern, view, outer0, outer_count, k0, kc, width, out);
    } else {
      pack_panel_typed<uint16_t, float, Bf16ToF32, false>(kern, view, outer0, outer_count, k0, kc, width, out);
    }
  } else {
    uint16_t* out = static_cast<uint16_t*>(dst);
    if (f32_source) {
      pack_panel_typed<float, uint16_t, F32ToBf16, true>(kern, view, outer0, outer_count, k0, kc, width, out);
    } else {
      pack_panel_typed<uint16_t, uint16_t, Same, true>(kern, view, outer0, outer_count, k0, kc, width, out);
    }
  }
}

}  // namespace

void pack_a(const GemmMicroKernel& kern, const MatrixRef& a, int64_t m0, int64_t mc, int64_t k0, int64_t kc,
            void* dst) {
  // op(A)[m, k]: stored A[m, k] (K contiguous) unless transposed.
  if (rows_apply(kern, kern.pack_a_rows, a, !a.trans)) {
    pack_rows_f32(kern, kern.pack_a_rows, kern.mr, OperandView{a, true}, m0, mc, k0, kc, static_cast<float*>(dst));
    return;
  }
  if (outer_contiguous_f32(kern, a, !a.trans)) {
    pack_outer_contiguous_f32(kern, OperandView{a, false}, m0, mc, k0, kc, kern.mr, static_cast<float*>(dst),
                              kern.pack_a_outer);
    return;
  }
  pack_panel(kern, OperandView{a, !a.trans}, m0, mc, k0, kc, kern.mr, dst);
}

void pack_b(const GemmMicroKernel& kern, const MatrixRef& b, int64_t k0, int64_t kc, int64_t n0, int64_t nc,
            void* dst) {
  // op(B)[k, n]: stored B[k, n] (N contiguous) unless transposed, then B[n, k] (K contiguous).
  if (rows_apply(kern, kern.pack_b_rows, b, b.trans)) {
    pack_rows_f32(kern, kern.pack_b_rows, kern.nr, OperandView{b, true}, n0, nc, k0, kc, static_cast<float*>(dst));
    return;
  }
  if (outer_contiguous_f32(kern, b, b.trans)) {
    pack_outer_contiguous_f32(kern, OperandView{b, false}, n0, nc, k0, kc, kern.nr, static_cast<float*>(dst));
    return;
  }
  pack_panel(kern, OperandView{b, b.trans}, n0, nc, k0, kc, kern.nr, dst);
}

}  // namespace peft::kernels::cpu
