// Products with a weight W [N, K] kept in a compressed form (4-bit NF4 / FP4, ggml's block formats):
// W is expanded a panel at a time into a small f32 workspace and each panel goes through the blocked
// GEMM, so the whole f32 matrix never exists. The formats differ only in how a panel is expanded.
#pragma once
#include <cstdint>
#include <functional>

#include "core/dtype.h"
#include "kernels/gemm.h"

namespace peft::kernels::cpu {

struct PanelSource {
  int64_t N = 0, K = 0;  // W's shape [N, K]
  // out: [r1 - r0, K] f32 = rows [r0, r1) of W.
  std::function<void(int64_t r0, int64_t r1, float* out)> rows;
  // out: [N, c1 - c0] f32 = columns [c0, c1) of W; c0 is a multiple of col_align.
  std::function<void(int64_t c0, int64_t c1, float* out)> cols;
  int64_t col_align = 1;  // a format with blocks along a row can only start a column panel on a block
};

// Sets the floats of one panel (default 2^22, 16 MiB); returns the previous size. For tests, which
// take the multi-panel paths on small weights with small panels. E_RANGE outside [1024, 2^28].
int64_t set_panel_floats(int64_t floats);

// Floats of workspace the products below need for `w`.
int64_t panel_matmul_workspace(const PanelSource& w);
// y[M, N] = alpha · op(x)[M, K] · Wᵀ (+ y when accumulate); y: row stride ldy. `compute`: the dtype
// the expanded values take before the product (F32 as they are, or BF16 rounded); f32 accumulation.
void panel_matmul(int64_t M, const MatrixRef& x, const PanelSource& w, float* y, int64_t ldy, float alpha,
                  bool accumulate, float* workspace, DType compute);
// dx[M, K] = alpha · dy[M, N] · W (+ dx when accumulate); dy: [M, N] f32 row-major.
void panel_matmul_dx(int64_t M, const float* dy, const PanelSource& w, float* dx, float alpha, bool accumulate,
                     float* workspace, DType compute);

}  // namespace peft::kernels::cpu
