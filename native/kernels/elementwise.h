// Elementwise f32 updates in place, over the pool: scaling (gradient accumulation's rescaling,
// Gemma's embedding scale) and copying (restoring saved values into storage others share).
#pragma once
#include <cstdint>

namespace peft::kernels {

// x: [n] *= factor.
void scale_values(int64_t n, float factor, float* x);
// dst: [n] ← src: [n] (they must not overlap), bit for bit, NaN and infinities included.
void copy_values(int64_t n, const float* src, float* dst);

}  // namespace peft::kernels
