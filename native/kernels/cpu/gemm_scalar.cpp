// Scalar GEMM register tile: the reference every wider variant is tested against. Plain C++
// (the compiler may use SSE2, which every x86-64 CPU has).
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {
constexpr int kMr = 4;
constexpr int kNr = 16;

// a: [k_steps][kMr] f32; b: [k_steps][kNr] f32; c: [kMr, ldc].
void tile_scalar(int64_t k_steps, const void* a_panel, const void* b_panel, float* c, int64_t ldc, float alpha,
                 bool accumulate) {
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  float acc[kMr][kNr] = {};
  for (int64_t k = 0; k < k_steps; ++k) {
    const float* ak = a + k * kMr;
    const float* bk = b + k * kNr;
    for (int i = 0; i < kMr; ++i) {
      for (int j = 0; j < kNr; ++j) acc[i][j] += ak[i] * bk[j];
    }
  }
  for (int i = 0; i < kMr; ++i) {
    float* row = c + i * ldc;
    for (int j = 0; j < kNr; ++j) row[j] = alpha * acc[i][j] + (accumulate ? row[j] : 0.0f);
  }
}

const GemmMicroKernel kKernel = {"scalar-4x16", kMr, kNr, 1, false, 256, 128, 2048, tile_scalar};
}  // namespace

const GemmMicroKernel& gemm_kernel_scalar() { return kKernel; }

}  // namespace peft::kernels::cpu
