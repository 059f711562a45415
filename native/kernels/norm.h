// Row normalisations of transformer blocks, forward and backward, over f32 rows of length dim.
//   RMSNorm (Llama):      y = x · rstd · w,             rstd = 1 / sqrt(mean(x²) + eps)
//   LayerNorm (GPT-2/BERT): y = (x − mean) · rstd · w + b, rstd = 1 / sqrt(var(x) + eps) (biased var)
// The forward saves rstd (and mean) per row so the backward needs only x and them.
#pragma once
#include <cstdint>

namespace peft::kernels {

// x: [rows, dim]; w: [dim]. Outputs: y: [rows, dim] (may alias x); rstd: [rows].
void rmsnorm_forward(int64_t rows, int64_t dim, const float* x, const float* w, float eps, float* y, float* rstd);

// dy, x: [rows, dim]; w: [dim]; rstd: [rows] from the forward.
// Outputs: dx: [rows, dim] or null; dw: [dim] or null (added to when accumulate_dw).
void rmsnorm_backward(int64_t rows, int64_t dim, const float* dy, const float* x, const float* w, const float* rstd,
                      float* dx, float* dw, bool accumulate_dw);

// x: [rows, dim]; w, b: [dim] (b may be null). Outputs: y: [rows, dim] (may alias x); mean, rstd: [rows].
void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* w, const float* b, float eps, float* y,
                       float* mean, float* rstd);

// dy, x: [rows, dim]; w: [dim]; mean, rstd: [rows]. Outputs: dx: [rows, dim] or null; dw, db: [dim] or
// null (added to when accumulate_dw).
void layernorm_backward(int64_t rows, int64_t dim, const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* dx, float* dw, float* db, bool accumulate_dw);

}  // namespace peft::kernels
