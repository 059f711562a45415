// Products with a 4-bit weight W [N, K]: the panel loop of panel_matmul.cpp over bitsandbytes'
// layout, whose blocks run over the flattened tensor (so any column range can start a panel).
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/panel_matmul.h"
#include "kernels/nf4.h"

namespace peft::kernels {

namespace {

cpu::PanelSource panels(const Quant4Tensor& w, int64_t N, int64_t K) {
  PEFT_CHECK(w.numel == N * K, ErrorCode::Shape,
             "Expected a 4-bit weight of " + std::to_string(N * K) + " elements ([" + std::to_string(N) + ", " +
                 std::to_string(K) + "]) but received " + std::to_string(w.numel));
  cpu::PanelSource s;
  s.N = N;
  s.K = K;
  s.rows = [&w, K](int64_t r0, int64_t r1, float* out) { dequantize4_rows(w, K, r0, r1, out); };
  s.cols = [&w, N, K](int64_t c0, int64_t c1, float* out) { dequantize4_cols(w, N, K, c0, c1, out); };
  return s;
}

}  // namespace

void round_to_bf16(float* v, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) v[i] = bf16_to_f32(f32_to_bf16(v[i]));
  });
}

int64_t quant4_matmul_workspace(int64_t N, int64_t K) {
  cpu::PanelSource s;
  s.N = N;
  s.K = K;
  return cpu::panel_matmul_workspace(s);
}

void quant4_matmul(int64_t M, int64_t N, int64_t K, const MatrixRef& x, const Quant4Tensor& w, float* y, int64_t ldy,
                   float alpha, bool accumulate, float* workspace, DType compute) {
  cpu::panel_matmul(M, x, panels(w, N, K), y, ldy, alpha, accumulate, workspace, compute);
}

void quant4_matmul_dx(int64_t M, int64_t N, int64_t K, const float* dy, const Quant4Tensor& w, float* dx, float alpha,
                      bool accumulate, float* workspace, DType compute) {
  cpu::panel_matmul_dx(M, dy, panels(w, N, K), dx, alpha, accumulate, workspace, compute);
}

}  // namespace peft::kernels
