#include "kernels/elementwise.h"

#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"

namespace peft::kernels {

namespace {
constexpr int64_t kChunk = 1 << 16;  // values per work item: small tensors stay on one thread

template <typename Body>
void for_chunks(int64_t n, const Body& body) {
  parallel_for((n + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
}
// Rows per work item so each item holds about kChunk values.
int64_t rows_per_item(int64_t width) { return std::max<int64_t>(1, kChunk / std::max<int64_t>(1, width)); }
}  // namespace

void scale_values(int64_t n, float factor, float* x) {
  for_chunks(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] *= factor;
  });
}

void copy_values(int64_t n, const float* src, float* dst) {
  for_chunks(n, [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, sizeof(float) * static_cast<size_t>(e - b)); });
}

void add_values(int64_t n, const float* src, float* dst) {
  for_chunks(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] += src[i];
  });
}

void copy_columns(int64_t m, int64_t width, int64_t src_width, int64_t offset, const float* src, float* dst) {
  parallel_for(m, rows_per_item(width), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(dst + i * width, src + i * src_width + offset, sizeof(float) * static_cast<size_t>(width));
  });
}

void place_columns(int64_t m, int64_t width, int64_t dst_width, int64_t offset, const float* src, float* dst) {
  parallel_for(m, rows_per_item(width), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(dst + i * dst_width + offset, src + i * width, sizeof(float) * static_cast<size_t>(width));
  });
}

void add_row_vector(int64_t m, int64_t n, int64_t ldy, const float* b, float* y) {
  parallel_for(m, rows_per_item(n), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * ldy + j] += b[j];
  });
}

void add_column_sums(int64_t m, int64_t n, int64_t ldx, const float* x, float* acc) {
  // Columns split over the pool so each thread owns its sums: the order over rows stays fixed.
  parallel_for(n, 256, [&](int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = j0; j < j1; ++j) acc[j] += x[i * ldx + j];
  });
}

void scale_columns(int64_t m, int64_t n, const float* scale, float* v) {
  parallel_for(m, rows_per_item(n), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < n; ++j) v[i * n + j] *= scale[j];
  });
}

void add_column_dots(int64_t m, int64_t n, const float* u, const float* v, float* g) {
  parallel_for(n, 256, [&](int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = j0; j < j1; ++j) g[j] += u[i * n + j] * v[i * n + j];
  });
}

}  // namespace peft::kernels
