// RMSNorm and LayerNorm: rows spread over the pool; the weight (and bias) gradients are reduced
// over rows by column blocks, so each thread owns its columns and the sum order is fixed.
#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/variants.h"
#include "kernels/norm.h"

namespace peft::kernels {

namespace {
constexpr int64_t kWorkPerTask = 1 << 14;  // elements per parallel work item
constexpr int64_t kColumnBlock = 64;       // columns per task of the weight-gradient reduction

int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, kWorkPerTask / std::max<int64_t>(dim, 1)); }

// body(c0, c1) over column blocks of [0, dim).
template <typename Body>
void for_column_blocks(int64_t dim, const Body& body) {
  const int64_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) body(b * kColumnBlock, std::min(dim, (b + 1) * kColumnBlock));
  });
}
}  // namespace

void rmsnorm_forward(int64_t rows, int64_t dim, const float* x, const float* w, float eps, float* y, float* rstd) {
  const cpu::LayerSpans& sp = cpu::active_layer_spans();
  parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) rstd[r] = sp.rmsnorm_row(x + r * dim, w, eps, y + r * dim, dim);
  });
}

void rmsnorm_backward(int64_t rows, int64_t dim, const float* dy, const float* x, const float* w, const float* rstd,
                      float* dx, float* dw, bool accumulate_dw) {
  const cpu::LayerSpans& sp = cpu::active_layer_spans();
  if (dx != nullptr) {
    parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) sp.rmsnorm_row_backward(dy + r * dim, x + r * dim, w, rstd[r], dx + r * dim, dim);
    });
  }
  if (dw != nullptr) {
    // dw[j] = Σ_r dy[r, j] · x[r, j] · rstd[r]
    for_column_blocks(dim, [&](int64_t c0, int64_t c1) {
      if (!accumulate_dw) std::fill(dw + c0, dw + c1, 0.0f);
      for (int64_t r = 0; r < rows; ++r) sp.scaled_product_add(dw + c0, dy + r * dim + c0, x + r * dim + c0, rstd[r], c1 - c0);
    });
  }
}

void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* w, const float* b, float eps, float* y,
                       float* mean, float* rstd) {
  parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      double s = 0;  // two passes in f64: the variance does not cancel for rows with a large mean
      for (int64_t i = 0; i < dim; ++i) s += xr[i];
      const double mu = s / static_cast<double>(dim);
      double v = 0;
      for (int64_t i = 0; i < dim; ++i) v += (xr[i] - mu) * (xr[i] - mu);
      const float m = static_cast<float>(mu);
      const float rs = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(dim) + eps));
      for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - m) * rs * w[i] + (b != nullptr ? b[i] : 0.0f);
      mean[r] = m;
      rstd[r] = rs;
    }
  });
}

void layernorm_backward(int64_t rows, int64_t dim, const float* dy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* dx, float* dw, float* db, bool accumulate_dw) {
  if (dx != nullptr) {
    // With x̂ = (x − mean)·rstd and g = w ⊙ dy: dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)).
    parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * dim;
        const float* dyr = dy + r * dim;
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < dim; ++i) {
          const double g = static_cast<double>(w[i]) * dyr[i];
          sg += g;
          sgx += g * ((xr[i] - mean[r]) * rstd[r]);
        }
        const float mg = static_cast<float>(sg / static_cast<double>(dim));
        const float mgx = static_cast<float>(sgx / static_cast<double>(dim));
        float* dxr = dx + r * dim;
        for (int64_t i = 0; i < dim; ++i) {
          const float xh = (xr[i] - mean[r]) * rstd[r];
          dxr[i] = rstd[r] * (w[i] * dyr[i] - mg - xh * mgx);
        }
      }
    });
  }
  if (dw != nullptr || db != nullptr) {
    for_column_blocks(dim, [&](int64_t c0, int64_t c1) {
      if (!accumulate_dw && dw != nullptr) std::fill(dw + c0, dw + c1, 0.0f);
      if (!accumulate_dw && db != nullptr) std::fill(db + c0, db + c1, 0.0f);
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        const float* dyr = dy + r * dim;
        for (int64_t j = c0; j < c1; ++j) {
          if (dw != nullptr) dw[j] += dyr[j] * ((xr[j] - mean[r]) * rstd[r]);
          if (db != nullptr) db[j] += dyr[j];
        }
      }
    });
  }
}

}  // namespace peft::kernels
