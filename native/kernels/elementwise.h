// Elementwise and row / column f32 updates, over the pool: scaling (gradient accumulation's
// rescaling, Gemma's embedding scale, IA3), copying (restoring saved values; the slices of fused
// projections), residual sums and a bias's forward and gradient.
#pragma once
#include <cstdint>

namespace peft::kernels {

// x: [n] *= factor.
void scale_values(int64_t n, float factor, float* x);
// dst: [n] ← src: [n] (they must not overlap), bit for bit, NaN and infinities included.
void copy_values(int64_t n, const float* src, float* dst);
// dst: [n] += src: [n].
void add_values(int64_t n, const float* src, float* dst);

// dst [m, width] ← columns [offset, offset + width) of src [m, src_width] ...
void copy_columns(int64_t m, int64_t width, int64_t src_width, int64_t offset, const float* src, float* dst);
// ... and back: columns [offset, offset + width) of dst [m, dst_width] ← src [m, width].
void place_columns(int64_t m, int64_t width, int64_t dst_width, int64_t offset, const float* src, float* dst);

// y[i, j] += b[j]; y: [m, n] at row stride ldy >= n, b: [n].
void add_row_vector(int64_t m, int64_t n, int64_t ldy, const float* b, float* y);
// acc[j] += Σ_i x[i, j]; x: [m, n] at row stride ldx >= n, acc: [n] (a bias's gradient).
void add_column_sums(int64_t m, int64_t n, int64_t ldx, const float* x, float* acc);
// v[i, j] *= scale[j]; v: [m, n], scale: [n] (IA3).
void scale_columns(int64_t m, int64_t n, const float* scale, float* v);
// g[j] += Σ_i u[i, j] · v[i, j]; u, v: [m, n], g: [n] (IA3's gradient).
void add_column_dots(int64_t m, int64_t n, const float* u, const float* v, float* g);

}  // namespace peft::kernels
