// Whole-matrix work on ggml block formats: quantizing a matrix row by row (after the NaN / Inf
// check), expanding a range of rows or of columns, and the products of ggml_quant.h through the
// shared panel loop (panel_matmul.cpp).
#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/panel_matmul.h"
#include "kernels/finite.h"
#include "kernels/ggml_quant.h"

namespace peft::kernels {

namespace {

constexpr int64_t kChunkElements = 1 << 15;  // elements per parallel work item

void check_cols(GgmlType type, int64_t cols) {
  const GgmlBlockFormat& f = ggml_block_format(type);
  PEFT_CHECK(cols > 0 && cols % f.block == 0, ErrorCode::Shape,
             std::string("Expected rows of a multiple of ") + std::to_string(f.block) + " elements for " + f.name +
                 " (its block) but received rows of " + std::to_string(cols));
}

const uint8_t* row_bytes_at(const GgmlQuantTensor& q, int64_t r) {
  return q.data + r * ggml_row_bytes(q.type, q.cols);
}

cpu::PanelSource panels(const GgmlQuantTensor& w) {
  cpu::PanelSource s;
  s.N = w.rows;
  s.K = w.cols;
  s.col_align = ggml_block_format(w.type).block;
  s.rows = [&w](int64_t r0, int64_t r1, float* out) { ggml_dequantize_rows(w, r0, r1, out); };
  s.cols = [&w](int64_t c0, int64_t c1, float* out) { ggml_dequantize_cols(w, c0, c1, out); };
  return s;
}

}  // namespace

void ggml_quantize_rows(GgmlType type, const float* x, int64_t rows, int64_t cols, uint8_t* out) {
  const GgmlBlockFormat& f = ggml_block_format(type);
  check_cols(type, cols);
  PEFT_CHECK(f.quantizer, ErrorCode::Unsupported,
             std::string("Expected a ggml type with a quantizer here but received ") + f.name);
  const NonFinite bad = find_nonfinite(x, DType::F32, rows * cols);
  PEFT_CHECK(bad.count == 0, ErrorCode::Range,
             std::string("Expected finite values to quantize to ") + f.name + " but element " + std::to_string(bad.first) +
                 " (row " + std::to_string(bad.first / cols) + ") is " +
                 (std::isnan(bad.value) ? "NaN" : bad.value > 0 ? "Infinity" : "-Infinity"));
  const int64_t row_bytes = ggml_row_bytes(type, cols);
  parallel_for(rows, std::max<int64_t>(1, kChunkElements / cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) ggml_quantize_row(type, x + r * cols, cols, out + r * row_bytes);
  });
}

void ggml_dequantize_rows(const GgmlQuantTensor& q, int64_t r0, int64_t r1, float* out) {
  PEFT_CHECK(0 <= r0 && r0 <= r1 && r1 <= q.rows, ErrorCode::Internal,
             "ggml_dequantize_rows: rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ") outside " +
                 std::to_string(q.rows));
  parallel_for(r1 - r0, std::max<int64_t>(1, kChunkElements / q.cols), [&](int64_t a, int64_t b) {
    for (int64_t r = r0 + a; r < r0 + b; ++r) ggml_dequantize_row(q.type, row_bytes_at(q, r), q.cols, out + (r - r0) * q.cols);
  });
}

void ggml_dequantize_cols(const GgmlQuantTensor& q, int64_t c0, int64_t c1, float* out) {
  const GgmlBlockFormat& f = ggml_block_format(q.type);
  PEFT_CHECK(0 <= c0 && c0 <= c1 && c1 <= q.cols && c0 % f.block == 0 && (c1 % f.block == 0 || c1 == q.cols),
             ErrorCode::Internal,
             "ggml_dequantize_cols: columns [" + std::to_string(c0) + ", " + std::to_string(c1) + ") not on blocks of " +
                 std::to_string(f.block) + " in " + std::to_string(q.cols));
  const int64_t width = c1 - c0;
  if (width == 0) return;
  const int64_t skip = c0 / f.block * f.bytes;  // bytes of the blocks before c0 in each row
  parallel_for(q.rows, std::max<int64_t>(1, kChunkElements / width), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) ggml_dequantize_row(q.type, row_bytes_at(q, r) + skip, width, out + r * width);
  });
}

int64_t ggml_matmul_workspace(const GgmlQuantTensor& w) { return cpu::panel_matmul_workspace(panels(w)); }

void ggml_matmul(int64_t M, const MatrixRef& x, const GgmlQuantTensor& w, float* y, int64_t ldy, float alpha,
                 bool accumulate, float* workspace, DType compute) {
  check_cols(w.type, w.cols);
  cpu::panel_matmul(M, x, panels(w), y, ldy, alpha, accumulate, workspace, compute);
}

void ggml_matmul_dx(int64_t M, const float* dy, const GgmlQuantTensor& w, float* dx, float alpha, bool accumulate,
                    float* workspace, DType compute) {
  check_cols(w.type, w.cols);
  cpu::panel_matmul_dx(M, dy, panels(w), dx, alpha, accumulate, workspace, compute);
}

}  // namespace peft::kernels
