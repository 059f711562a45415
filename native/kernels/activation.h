// Elementwise MLP activations, forward and backward, over n f32 values.
//   SwiGLU (Llama MLP): h = silu(gate) · up, silu(g) = g · σ(g)
//   GELU, tanh approximation (GPT-2 "gelu_new"): y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
//   GELU with the exact error function (BERT's "gelu"): y = x·Φ(x)
//   GeGLU (Gemma MLP): h = gelu_tanh(gate) · up
//   Soft-capping (Gemma 2's final logits): y = cap · tanh(x / cap)
#pragma once
#include <cstdint>

namespace peft::kernels {

// gate, up: [n]. Output: h: [n] (may alias gate or up).
void swiglu_forward(int64_t n, const float* gate, const float* up, float* h);
// dh, gate, up: [n]. Outputs: d_gate, d_up: [n] (may alias dh).
void swiglu_backward(int64_t n, const float* dh, const float* gate, const float* up, float* d_gate, float* d_up);

// x: [n]. Output: y: [n] (may alias x).
void gelu_tanh_forward(int64_t n, const float* x, float* y);
// dy, x: [n]. Output: dx: [n] (may alias dy).
void gelu_tanh_backward(int64_t n, const float* dy, const float* x, float* dx);

// x: [n]. Output: y: [n] (may alias x).
void gelu_erf_forward(int64_t n, const float* x, float* y);
// dy, x: [n]. Output: dx: [n] (may alias dy).
void gelu_erf_backward(int64_t n, const float* dy, const float* x, float* dx);

// gate, up: [n]. Output: h: [n] (may alias gate or up).
void geglu_forward(int64_t n, const float* gate, const float* up, float* h);
// dh, gate, up: [n]. Outputs: d_gate, d_up: [n] (may alias dh).
void geglu_backward(int64_t n, const float* dh, const float* gate, const float* up, float* d_gate, float* d_up);

// x: [rows, cols] at row stride ld, capped in place (cap > 0).
void softcap_forward(int64_t rows, int64_t cols, int64_t ld, float cap, float* x);
// y: the capped values, dy: their gradient, both [rows, cols] at row stride ld; dy becomes the
// gradient of the values before capping, in place: dy · (1 − (y / cap)²).
void softcap_backward(int64_t rows, int64_t cols, int64_t ld, float cap, const float* y, float* dy);

// The bottleneck adapters' activations, elementwise: y = act(x) / dx = dy · act'(x) (dx may alias dy).
enum class Pointwise { Relu, GeluTanh, Silu, Tanh };
void pointwise_forward(Pointwise a, int64_t n, const float* x, float* y);
void pointwise_backward(Pointwise a, int64_t n, const float* dy, const float* x, float* dx);

}  // namespace peft::kernels
