// The small-M GEMM loops (GemvSpans in variants.h), written once over a register-traits type V
// that each vector variant file supplies (gemv_avx2.cpp, gemv_avx512.cpp). Everything is in an
// anonymous namespace on purpose: each variant file compiles its own copy with its own -m flags.
//
// The weight is the only large operand and is read exactly once; x (at most kGemvMaxRows rows)
// and the partial sums stay in L1. Partial loads zero the lanes past the end, so edges run through
// the same vector arithmetic as the body.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {
namespace {

// Weight element types: f32 as stored, bf16 widened to f32 (exact).
template <class V>
struct F32Weight {
  using T = float;
  static typename V::F load(const float* p) { return V::load(p); }
  static typename V::F load_part(const float* p, int r) { return V::load_part(p, r); }
};
template <class V>
struct Bf16Weight {
  using T = uint16_t;
  static typename V::F load(const uint16_t* p) { return V::load_bf16(p); }
  static typename V::F load_part(const uint16_t* p, int r) { return V::load_part_bf16(p, r); }
};

// y[i, j] = alpha · sum (+ y[i, j]) for `r` lanes from j (r = V::kWidth for a whole vector).
template <class V>
[[gnu::always_inline]] inline void store_out(float* y, typename V::F sum, typename V::F alpha, bool accumulate, int r) {
  typename V::F out = V::mul(sum, alpha);
  if (r == V::kWidth) {
    if (accumulate) out = V::add(out, V::load(y));
    V::store(y, out);
  } else {
    if (accumulate) out = V::add(out, V::load_part(y, r));
    V::store_part(y, out, r);
  }
}

// dot_rows for M rows of x, U vectors of K per step (M·U accumulators). Each output is computed the
// same way wherever its row of w falls, so any split over rows gives the same bits.
template <class V, class W, int M, int U>
void dot_rows_m(int64_t n, int64_t k, const float* x, int64_t ldx, const typename W::T* w, int64_t ldw, float* y,
                int64_t ldy, float alpha, bool accumulate) {
  using F = typename V::F;
  constexpr int kW = V::kWidth;
  for (int64_t j = 0; j < n; ++j) {
    const typename W::T* row = w + j * ldw;
    F acc[M][U];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) acc[i][u] = V::zero();
    int64_t p = 0;
    for (; p + kW * U <= k; p += kW * U) {
      F wv[U];
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u) wv[u] = W::load(row + p + kW * u);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) acc[i][u] = V::fmadd(V::load(x + i * ldx + p + kW * u), wv[u], acc[i][u]);
    }
    for (; p + kW <= k; p += kW) {
      const F wv = W::load(row + p);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) acc[i][0] = V::fmadd(V::load(x + i * ldx + p), wv, acc[i][0]);
    }
    if (p < k) {
      const int r = static_cast<int>(k - p);
      const F wv = W::load_part(row + p, r);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) acc[i][0] = V::fmadd(V::load_part(x + i * ldx + p, r), wv, acc[i][0]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      F sum = acc[i][0];
#pragma GCC unroll 4
      for (int u = 1; u < U; ++u) sum = V::add(sum, acc[i][u]);
      float* out = y + i * ldy + j;
      const float dot = V::hsum(sum);
      *out = alpha * dot + (accumulate ? *out : 0.0f);
    }
  }
}

// A tile of the dot products: MR rows of x against NR rows of w (from row j), one accumulator per
// output, x and w each loaded once per vector step into registers: MR + NR loads feed MR·NR FMAs.
// With one row of w at a time every FMA waited on its own load of x, which held M = 8 to a fifth of
// the FMA peak. Each output is summed in the same order as dot_rows_m<M, 1>.
template <class V, class W, int MR, int NR>
[[gnu::always_inline]] inline void dot_tile(int64_t k, const float* x, int64_t ldx, const typename W::T* w, int64_t ldw,
                                            float* y, int64_t ldy, float alpha, bool accumulate) {
  using F = typename V::F;
  constexpr int kW = V::kWidth;
  F acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int c = 0; c < NR; ++c) acc[i][c] = V::zero();
  auto step = [&](int64_t p, int r) [[gnu::always_inline]] {
    F wv[NR], xv[MR];
    // The next tile's rows of w, a tile ahead: the hardware prefetcher alone left the loop waiting on
    // memory once it did several FMAs per weight (a cold M = 8 product ran at a third of its warm speed).
#pragma GCC unroll 4
    for (int c = 0; c < NR; ++c) __builtin_prefetch(w + (NR + c) * ldw + p);
#pragma GCC unroll 4
    for (int c = 0; c < NR; ++c) wv[c] = r == kW ? W::load(w + c * ldw + p) : W::load_part(w + c * ldw + p, r);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) xv[i] = r == kW ? V::load(x + i * ldx + p) : V::load_part(x + i * ldx + p, r);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int c = 0; c < NR; ++c) acc[i][c] = V::fmadd(xv[i], wv[c], acc[i][c]);
  };
  int64_t p = 0;
  for (; p + kW <= k; p += kW) step(p, kW);
  if (p < k) step(p, static_cast<int>(k - p));
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int c = 0; c < NR; ++c) {
      float* out = y + i * ldy + c;
      const float dot = V::hsum(acc[i][c]);
      *out = alpha * dot + (accumulate ? *out : 0.0f);
    }
}

// MR rows of x (MR <= 4) against every row of w, four rows of w at a time.
template <class V, class W, int MR>
void dot_rows_tiles(int64_t n, int64_t k, const float* x, int64_t ldx, const typename W::T* w, int64_t ldw, float* y,
                    int64_t ldy, float alpha, bool accumulate) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) dot_tile<V, W, MR, 4>(k, x, ldx, w + j * ldw, ldw, y + j, ldy, alpha, accumulate);
  for (; j < n; ++j) dot_tile<V, W, MR, 1>(k, x, ldx, w + j * ldw, ldw, y + j, ldy, alpha, accumulate);
}

// dot_rows for M of 5 to 8 rows of x: the first four rows, then the rest, each over all of w (the
// second pass reads w from cache: the driver sizes the column blocks for it).
template <class V, class W, int M>
void dot_rows_blocked(int64_t n, int64_t k, const float* x, int64_t ldx, const typename W::T* w, int64_t ldw, float* y,
                      int64_t ldy, float alpha, bool accumulate) {
  static_assert(M > 4 && M <= 8, "four rows, then one to four more");
  // Column blocks small enough that the second pass finds them in L1 / L2.
  const int64_t block = std::max<int64_t>(4, (int64_t{16} * 1024 / (k * static_cast<int64_t>(sizeof(typename W::T)))) / 4 * 4);
  for (int64_t j0 = 0; j0 < n; j0 += block) {
    const int64_t nb = std::min(block, n - j0);
    dot_rows_tiles<V, W, 4>(nb, k, x, ldx, w + j0 * ldw, ldw, y + j0, ldy, alpha, accumulate);
    dot_rows_tiles<V, W, M - 4>(nb, k, x + 4 * ldx, ldx, w + j0 * ldw, ldw, y + 4 * ldy + j0, ldy, alpha, accumulate);
  }
}

// Columns of y per pass of axpy_rows for M rows: the partial sums of a pass, [M][width], take 16 KiB
// and stay in L1 next to the weight rows streaming through; the wider the pass, the longer each
// contiguous run read from a row of w.
template <int M>
constexpr int64_t axpy_block() { return 4096 / M / 16 * 16; }

// acc[i][v : v+r] = Σ over the P weight rows q of x[i, q] · w[q][v : v+r], added in q order.
template <class V, class W, int M, int P>
[[gnu::always_inline]] inline void axpy_step(const typename V::F (&xb)[M][P], const typename W::T* const (&rows)[P],
                                             int64_t v, int r, float (*acc)[axpy_block<M>()]) {
  using F = typename V::F;
  F wv[P];
#pragma GCC unroll 4
  for (int q = 0; q < P; ++q) wv[q] = r == V::kWidth ? W::load(rows[q] + v) : W::load_part(rows[q] + v, r);
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    F a = V::load(acc[i] + v);  // the buffer is whole vectors wide: no partial load needed
#pragma GCC unroll 4
    for (int q = 0; q < P; ++q) a = V::fmadd(xb[i][q], wv[q], a);
    V::store(acc[i] + v, a);
  }
}

// P rows of w (the K index) per pass over the columns: M·P broadcasts of x held in registers.
template <class V, class W, int M, int P>
void axpy_rows_m(int64_t n, int64_t k, const float* x, int64_t ldx, const typename W::T* w, int64_t ldw, float* y,
                 int64_t ldy, float alpha, bool accumulate) {
  using F = typename V::F;
  constexpr int kW = V::kWidth;
  constexpr int64_t kBlock = axpy_block<M>();
  alignas(64) float acc[M][kBlock];
  const F valpha = V::set1(alpha);
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    const int64_t width = n - j0 < kBlock ? n - j0 : kBlock;
    const int64_t whole = width / kW * kW;
    const int64_t padded = (width + kW - 1) / kW * kW;
    for (int i = 0; i < M; ++i)
      for (int64_t v = 0; v < padded; v += kW) V::store(acc[i] + v, V::zero());
    int64_t p = 0;
    for (; p + P <= k; p += P) {
      F xb[M][P];
      const typename W::T* rows[P];
#pragma GCC unroll 4
      for (int q = 0; q < P; ++q) {
        rows[q] = w + (p + q) * ldw + j0;
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) xb[i][q] = V::set1(x[i * ldx + p + q]);
      }
      for (int64_t v = 0; v < whole; v += kW) axpy_step<V, W, M, P>(xb, rows, v, kW, acc);
      if (whole < width) axpy_step<V, W, M, P>(xb, rows, whole, static_cast<int>(width - whole), acc);
    }
    for (; p < k; ++p) {  // the last k % P rows, one at a time (same order: p ascending)
      F xb[M][1];
      const typename W::T* rows[1] = {w + p * ldw + j0};
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) xb[i][0] = V::set1(x[i * ldx + p]);
      for (int64_t v = 0; v < whole; v += kW) axpy_step<V, W, M, 1>(xb, rows, v, kW, acc);
      if (whole < width) axpy_step<V, W, M, 1>(xb, rows, whole, static_cast<int>(width - whole), acc);
    }
    for (int i = 0; i < M; ++i) {
      float* out = y + i * ldy + j0;
      for (int64_t v = 0; v < whole; v += kW) store_out<V>(out + v, V::load(acc[i] + v), valpha, accumulate, kW);
      if (whole < width)
        store_out<V>(out + whole, V::load(acc[i] + whole), valpha, accumulate, static_cast<int>(width - whole));
    }
  }
}

// Register budgets: U accumulators per row of x for the dot products (the FMA latency needs about
// four chains in flight), P rows of w per axpy pass (M·P broadcasts of x in registers).
template <class V, class W>
void dot_rows(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const typename W::T* w, int64_t ldw, float* y,
              int64_t ldy, float alpha, bool accumulate) {
  switch (m) {
    case 1: return dot_rows_m<V, W, 1, 4>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 2: return dot_rows_m<V, W, 2, 4>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 3: return dot_rows_tiles<V, W, 3>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 4: return dot_rows_tiles<V, W, 4>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 5: return dot_rows_blocked<V, W, 5>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 6: return dot_rows_blocked<V, W, 6>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 7: return dot_rows_blocked<V, W, 7>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 8: return dot_rows_blocked<V, W, 8>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    default: return;  // the driver never asks for more than kGemvMaxRows
  }
}

template <class V, class W>
void axpy_rows(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const typename W::T* w, int64_t ldw, float* y,
               int64_t ldy, float alpha, bool accumulate) {
  switch (m) {
    case 1: return axpy_rows_m<V, W, 1, 4>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 2: return axpy_rows_m<V, W, 2, 2>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 3: return axpy_rows_m<V, W, 3, 1>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 4: return axpy_rows_m<V, W, 4, 1>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 5: return axpy_rows_m<V, W, 5, 1>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 6: return axpy_rows_m<V, W, 6, 1>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 7: return axpy_rows_m<V, W, 7, 1>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    case 8: return axpy_rows_m<V, W, 8, 1>(n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
    default: return;
  }
}

// The GemvSpans of a vector variant.
template <class V>
struct GemvVariant {
  static void dot_f32(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                      int64_t ldy, float alpha, bool accumulate) {
    dot_rows<V, F32Weight<V>>(m, n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
  }
  static void dot_bf16(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                       float* y, int64_t ldy, float alpha, bool accumulate) {
    dot_rows<V, Bf16Weight<V>>(m, n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
  }
  static void axpy_f32(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, float* y,
                       int64_t ldy, float alpha, bool accumulate) {
    axpy_rows<V, F32Weight<V>>(m, n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
  }
  static void axpy_bf16(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                        float* y, int64_t ldy, float alpha, bool accumulate) {
    axpy_rows<V, Bf16Weight<V>>(m, n, k, x, ldx, w, ldw, y, ldy, alpha, accumulate);
  }
};

}  // namespace
}  // namespace peft::kernels::cpu
