// The panel loop shared by the compressed-weight products (panel_matmul.h).
#include "kernels/cpu/panel_matmul.h"

#include <algorithm>
#include <atomic>
#include <string>

#include "core/error.h"
#include "kernels/nf4.h"

namespace peft::kernels::cpu {

namespace {

// 16 MiB of f32 per panel. Every panel repacks the other operand (x, or dy) for the GEMM, so small
// panels make the product pay for packing many times: with 1 MiB panels a Q4_K [4096, 4096] forward
// over 512 tokens ran at 0.57x a bf16 weight's speed, with 16 MiB at 0.95x (bench:gguf).
constexpr int64_t kDefaultPanelFloats = 1 << 22;
std::atomic<int64_t> g_panel_floats{kDefaultPanelFloats};

int64_t panel_rows(int64_t N, int64_t K) {
  const int64_t rows = std::max<int64_t>(16, g_panel_floats.load(std::memory_order_relaxed) / std::max<int64_t>(1, K));
  return std::max<int64_t>(1, std::min(N, rows));
}

// Columns per column panel of W [N, K]: the row panel's size, rounded down to whole blocks.
int64_t panel_cols(const PanelSource& w) {
  const int64_t cols = panel_rows(w.K, w.N);
  return std::min(w.K, std::max(w.col_align, cols / w.col_align * w.col_align));
}

void check_compute(DType compute) {
  PEFT_CHECK(compute == DType::F32 || compute == DType::BF16, ErrorCode::DType,
             std::string("Expected f32 or bf16 for a quantized product's compute dtype but received ") +
                 dtype_name(compute));
}

void to_compute(float* panel, int64_t n, DType compute) {
  if (compute == DType::BF16) round_to_bf16(panel, n);
}

}  // namespace

int64_t set_panel_floats(int64_t floats) {
  PEFT_CHECK(floats >= 1024 && floats <= (int64_t{1} << 28), ErrorCode::Range,
             "Expected a panel size in [1024, 2^28] floats but received " + std::to_string(floats));
  return g_panel_floats.exchange(floats);
}

int64_t panel_matmul_workspace(const PanelSource& w) {
  return std::max(panel_rows(w.N, w.K) * w.K, panel_cols(w) * w.N);
}

void panel_matmul(int64_t M, const MatrixRef& x, const PanelSource& w, float* y, int64_t ldy, float alpha,
                  bool accumulate, float* workspace, DType compute) {
  check_compute(compute);
  const int64_t N = w.N, K = w.K;
  if (K > N && M > 1 && !x.trans) {
    // Wide W (down_proj): panels of columns, so each column block of x is packed once (panels of
    // rows would repack all of x per panel); y takes one accumulating pass per panel.
    const int64_t cols = panel_cols(w);
    for (int64_t k0 = 0; k0 < K; k0 += cols) {
      const int64_t kb = std::min(cols, K - k0);
      w.cols(k0, k0 + kb, workspace);  // [N, kb]
      to_compute(workspace, N * kb, compute);
      const MatrixRef xk{static_cast<const char*>(x.data) + k0 * static_cast<int64_t>(dtype_size(x.dtype)), x.dtype, x.ld,
                         false};  // x[:, k0 : k0 + kb]
      gemm(M, N, kb, xk, MatrixRef{workspace, DType::F32, kb, true}, y, ldy, alpha, accumulate || k0 > 0);
    }
    return;
  }
  const int64_t rows = panel_rows(N, K);
  for (int64_t n0 = 0; n0 < N; n0 += rows) {
    const int64_t nb = std::min(rows, N - n0);
    w.rows(n0, n0 + nb, workspace);  // [nb, K]
    to_compute(workspace, nb * K, compute);
    gemm(M, nb, K, x, MatrixRef{workspace, DType::F32, K, true}, y + n0, ldy, alpha, accumulate);
  }
}

void panel_matmul_dx(int64_t M, const float* dy, const PanelSource& w, float* dx, float alpha, bool accumulate,
                     float* workspace, DType compute) {
  check_compute(compute);
  const int64_t N = w.N, K = w.K;
  const int64_t rows = panel_rows(N, K);
  for (int64_t n0 = 0; n0 < N; n0 += rows) {
    const int64_t nb = std::min(rows, N - n0);
    w.rows(n0, n0 + nb, workspace);  // [nb, K]
    to_compute(workspace, nb * K, compute);
    // dx += dy[:, n0 : n0 + nb] · W[n0 : n0 + nb, :]
    gemm(M, K, nb, MatrixRef{dy + n0, DType::F32, N, false}, MatrixRef{workspace, DType::F32, K, false}, dx, K, alpha,
         accumulate || n0 > 0);
  }
}

}  // namespace peft::kernels::cpu
