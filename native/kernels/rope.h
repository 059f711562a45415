// Rotary position embedding in Hugging Face's layout (rotate_half): within each head, dimension i
// pairs with i + head_dim/2 and both rotate by the angle pos · inv_freq[i]:
//   y[i]        = x[i] · cos − x[i + h] · sin
//   y[i + h]    = x[i + h] · cos + x[i] · sin        (h = head_dim / 2)
// The backward is the inverse rotation (sin → −sin).
//
// Precision: HF computes inv_freq and the angles in f32; here inv_freq is computed in f64 and each
// angle, cos and sin in f64, then rounded to f32. This is closer to the exact rotation than HF's
// f32 angles (whose error grows with the position: ~1e-4 rad at position 4096).
#pragma once
#include <cstdint>

namespace peft::kernels {

struct RopeShape {
  int64_t batch, seq, heads, head_dim;  // head_dim even
};

// inv_freq: [head_dim / 2] f64 out, scale_i · theta^(−2i / head_dim); freq_scale: [head_dim / 2] or null (all 1),
// the per-frequency factor of 'linear' (1/factor) or 'llama3' rope_scaling.
void rope_inv_freq(int64_t head_dim, double theta, const float* freq_scale, double* inv_freq);

// x: [batch, seq, heads, head_dim]; positions: [batch, seq] i32; inv_freq: [head_dim / 2] (rope_inv_freq).
// Output: y: [batch, seq, heads, head_dim] (may alias x). inverse: rotate by −angle (the backward).
void rope_apply(const RopeShape& s, const float* x, const int32_t* positions, const double* inv_freq, bool inverse,
                float* y);

}  // namespace peft::kernels
