// SwiGLU (vector loops of the active instruction set), tanh- and erf-GELU, GeGLU and soft-capping (scalar),
// over the pool.
#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/activation.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels {

namespace {
constexpr int64_t kChunk = 1 << 14;  // elements per parallel work item

template <typename Body>
void for_chunks(int64_t n, const Body& body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk) - c * kChunk);
  });
}

constexpr float kGeluK = 0.7978845608028654f;  // √(2/π)
constexpr float kGeluC = 0.044715f;

inline float gelu_tanh(float v) { return 0.5f * v * (1.0f + std::tanh(kGeluK * (v + kGeluC * v * v * v))); }
inline float gelu_tanh_grad(float v) {
  const float t = std::tanh(kGeluK * (v + kGeluC * v * v * v));
  return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * kGeluK * (1.0f + 3.0f * kGeluC * v * v);
}

// Rows of a strided matrix, split over the pool.
template <typename Body>
void for_rows(int64_t rows, int64_t cols, const Body& body) {
  const int64_t per = std::max<int64_t>(1, kChunk / std::max<int64_t>(cols, 1));
  parallel_for((rows + per - 1) / per, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t r = c0 * per; r < std::min(rows, c1 * per); ++r) body(r);
  });
}
}  // namespace

void swiglu_forward(int64_t n, const float* gate, const float* up, float* h) {
  const cpu::LayerSpans& sp = cpu::active_layer_spans();
  for_chunks(n, [&](int64_t b, int64_t len) { sp.swiglu(gate + b, up + b, h + b, len); });
}

void swiglu_backward(int64_t n, const float* dh, const float* gate, const float* up, float* d_gate, float* d_up) {
  const cpu::LayerSpans& sp = cpu::active_layer_spans();
  for_chunks(n, [&](int64_t b, int64_t len) { sp.swiglu_backward(dh + b, gate + b, up + b, d_gate + b, d_up + b, len); });
}

void gelu_tanh_forward(int64_t n, const float* x, float* y) {
  for_chunks(n, [&](int64_t b, int64_t len) {
    for (int64_t i = b; i < b + len; ++i) {
      y[i] = gelu_tanh(x[i]);
    }
  });
}

void gelu_tanh_backward(int64_t n, const float* dy, const float* x, float* dx) {
  for_chunks(n, [&](int64_t b, int64_t len) {
    for (int64_t i = b; i < b + len; ++i) {
      dx[i] = dy[i] * gelu_tanh_grad(x[i]);
    }
  });
}

void gelu_erf_forward(int64_t n, const float* x, float* y) {
  for_chunks(n, [&](int64_t b, int64_t len) {
    for (int64_t i = b; i < b + len; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678f));
  });
}

void gelu_erf_backward(int64_t n, const float* dy, const float* x, float* dx) {
  for_chunks(n, [&](int64_t b, int64_t len) {
    for (int64_t i = b; i < b + len; ++i) {
      const float cdf = 0.5f * (1.0f + std::erf(x[i] * 0.70710678f));
      const float pdf = 0.39894228f * std::exp(-0.5f * x[i] * x[i]);  // φ(x) = e^(−x²/2) / √(2π)
      dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
  });
}

void geglu_forward(int64_t n, const float* gate, const float* up, float* h) {
  for_chunks(n, [&](int64_t b, int64_t len) {
    for (int64_t i = b; i < b + len; ++i) h[i] = gelu_tanh(gate[i]) * up[i];
  });
}

void geglu_backward(int64_t n, const float* dh, const float* gate, const float* up, float* d_gate, float* d_up) {
  for_chunks(n, [&](int64_t b, int64_t len) {
    for (int64_t i = b; i < b + len; ++i) {
      const float g = gate[i], u = up[i], d = dh[i];  // read first: the outputs may alias dh
      d_gate[i] = d * u * gelu_tanh_grad(g);
      d_up[i] = d * gelu_tanh(g);
    }
  });
}

void softcap_forward(int64_t rows, int64_t cols, int64_t ld, float cap, float* x) {
  const float inv = 1.0f / cap;
  for_rows(rows, cols, [&](int64_t r) {
    float* row = x + r * ld;
    for (int64_t j = 0; j < cols; ++j) row[j] = cap * std::tanh(row[j] * inv);
  });
}

void softcap_backward(int64_t rows, int64_t cols, int64_t ld, float cap, const float* y, float* dy) {
  const float inv = 1.0f / cap;
  for_rows(rows, cols, [&](int64_t r) {
    const float* yr = y + r * ld;
    float* dr = dy + r * ld;
    for (int64_t j = 0; j < cols; ++j) {
      const float t = yr[j] * inv;
      dr[j] *= 1.0f - t * t;
    }
  });
}

void pointwise_forward(Pointwise a, int64_t n, const float* x, float* y) {
  switch (a) {
    case Pointwise::Relu:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : 0.0f;
      break;
    case Pointwise::GeluTanh:
      gelu_tanh_forward(n, x, y);
      break;
    case Pointwise::Silu:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
      break;
    case Pointwise::Tanh:
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      break;
  }
}

void pointwise_backward(Pointwise a, int64_t n, const float* dy, const float* x, float* dx) {
  switch (a) {
    case Pointwise::Relu:
      for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0 ? dy[i] : 0.0f;
      break;
    case Pointwise::GeluTanh:
      gelu_tanh_backward(n, dy, x, dx);
      break;
    case Pointwise::Silu:
      for (int64_t i = 0; i < n; ++i) {
        const float s = 1.0f / (1.0f + std::exp(-x[i]));
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
      }
      break;
    case Pointwise::Tanh:
      for (int64_t i = 0; i < n; ++i) {
        const float t = std::tanh(x[i]);
        dx[i] = dy[i] * (1.0f - t * t);
      }
      break;
  }
}

}  // namespace peft::kernels
