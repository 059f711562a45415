// Products with a 4-bit weight W [N, K]: W is dequantized a panel of rows at a time into a small
// f32 workspace and each panel goes through the blocked GEMM, so the whole f32 matrix never exists.
#include <algorithm>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/nf4.h"

namespace peft::kernels {

namespace {

constexpr int64_t kPanelFloats = 1 << 18;  // 1 MiB of f32 per panel: stays in L2 on most CPUs

int64_t panel_rows(int64_t N, int64_t K) {
  const int64_t rows = std::max<int64_t>(16, kPanelFloats / std::max<int64_t>(1, K));
  return std::max<int64_t>(1, std::min(N, rows));
}

// Columns per column panel of W [N, K] (the same panel size as panel_rows gives).
int64_t panel_cols(int64_t N, int64_t K) { return panel_rows(K, N); }

void check_weight(const Quant4Tensor& w, int64_t N, int64_t K) {
  PEFT_CHECK(w.numel == N * K, ErrorCode::Shape,
             "Expected a 4-bit weight of " + std::to_string(N * K) + " elements ([" + std::to_string(N) + ", " +
                 std::to_string(K) + "]) but received " + std::to_string(w.numel));
}

// Rows [n0, n0 + nb) of W [N, K] into panel: [nb, K] f32, in the compute dtype's values.
void dequantize_panel(const Quant4Tensor& w, int64_t K, int64_t n0, int64_t nb, DType compute, float* panel) {
  dequantize4_rows(w, K, n0, n0 + nb, panel);
  if (compute == DType::BF16) round_to_bf16(panel, nb * K);
}

void check_compute(DType compute) {
  PEFT_CHECK(compute == DType::F32 || compute == DType::BF16, ErrorCode::DType,
             std::string("Expected f32 or bf16 for a 4-bit product's compute dtype but received ") + dtype_name(compute));
}

}  // namespace

void round_to_bf16(float* v, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) v[i] = bf16_to_f32(f32_to_bf16(v[i]));
  });
}

int64_t quant4_matmul_workspace(int64_t N, int64_t K) {
  return std::max(panel_rows(N, K) * K, panel_cols(N, K) * N);
}

void quant4_matmul(int64_t M, int64_t N, int64_t K, const MatrixRef& x, const Quant4Tensor& w, float* y, int64_t ldy,
                   float alpha, bool accumulate, float* workspace, DType compute) {
  check_weight(w, N, K);
  check_compute(compute);
  if (K > N && M > 1 && !x.trans) {
    // Wide W (down_proj): panels of columns, so each column block of x is packed once (panels of
    // rows would repack all of x per panel); y takes one accumulating pass per panel.
    const int64_t cols = panel_cols(N, K);
    for (int64_t k0 = 0; k0 < K; k0 += cols) {
      const int64_t kb = std::min(cols, K - k0);
      dequantize4_cols(w, N, K, k0, k0 + kb, workspace);  // [N, kb]
      if (compute == DType::BF16) round_to_bf16(workspace, N * kb);
      const MatrixRef xk{static_cast<const char*>(x.data) + k0 * static_cast<int64_t>(dtype_size(x.dtype)), x.dtype, x.ld,
                         false};  // x[:, k0 : k0 + kb]
      gemm(M, N, kb, xk, MatrixRef{workspace, DType::F32, kb, true}, y, ldy, alpha, accumulate || k0 > 0);
    }
    return;
  }
  const int64_t rows = panel_rows(N, K);
  for (int64_t n0 = 0; n0 < N; n0 += rows) {
    const int64_t nb = std::min(rows, N - n0);
    dequantize_panel(w, K, n0, nb, compute, workspace);  // [nb, K]
    gemm(M, nb, K, x, MatrixRef{workspace, DType::F32, K, true}, y + n0, ldy, alpha, accumulate);
  }
}

void quant4_matmul_dx(int64_t M, int64_t N, int64_t K, const float* dy, const Quant4Tensor& w, float* dx, float alpha,
                      bool accumulate, float* workspace, DType compute) {
  check_weight(w, N, K);
  check_compute(compute);
  const int64_t rows = panel_rows(N, K);
  for (int64_t n0 = 0; n0 < N; n0 += rows) {
    const int64_t nb = std::min(rows, N - n0);
    dequantize_panel(w, K, n0, nb, compute, workspace);  // [nb, K]
    // dx += dy[:, n0 : n0 + nb] · W[n0 : n0 + nb, :]
    gemm(M, K, nb, MatrixRef{dy + n0, DType::F32, N, false}, MatrixRef{workspace, DType::F32, K, false}, dx, K, alpha,
         accumulate || n0 > 0);
  }
}

}  // namespace peft::kernels
