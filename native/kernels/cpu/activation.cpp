// SwiGLU (vector loops of the active instruction set) and tanh-GELU (scalar), over the pool.
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
      const float v = x[i];
      y[i] = 0.5f * v * (1.0f + std::tanh(kGeluK * (v + kGeluC * v * v * v)));
    }
  });
}

void gelu_tanh_backward(int64_t n, const float* dy, const float* x, float* dx) {
  for_chunks(n, [&](int64_t b, int64_t len) {
    for (int64_t i = b; i < b + len; ++i) {
      const float v = x[i];
      const float t = std::tanh(kGeluK * (v + kGeluC * v * v * v));
      const float d = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * kGeluK * (1.0f + 3.0f * kGeluC * v * v);
      dx[i] = dy[i] * d;
    }
  });
}

}  // namespace peft::kernels
