// Rotary position embedding (HF rotate_half layout), one token's cos/sin table at a time.
#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/rope.h"

namespace peft::kernels {

namespace {
constexpr int64_t kMaxHalf = 1024;  // head_dim <= 2048: the per-token table lives on the stack
}

void rope_inv_freq(int64_t head_dim, double theta, const float* freq_scale, double* inv_freq) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double f = std::pow(theta, -static_cast<double>(2 * i) / static_cast<double>(head_dim));
    inv_freq[i] = freq_scale != nullptr ? f * freq_scale[i] : f;
  }
}

void rope_apply(const RopeShape& s, const float* x, const int32_t* positions, const double* inv_freq, bool inverse,
                float* y) {
  const int64_t half = s.head_dim / 2;
  PEFT_CHECK(s.head_dim % 2 == 0 && half <= kMaxHalf, ErrorCode::Shape,
             "Expected an even head_dim of at most " + std::to_string(2 * kMaxHalf) + " for rope but received " +
                 std::to_string(s.head_dim));
  const int64_t tokens = s.batch * s.seq;
  const int64_t token_size = s.heads * s.head_dim;
  // Tokens per task: enough work (each token's table costs about as much as 64 multiply-adds per
  // frequency) that waking a thread pays; a decode step's few tokens run on the caller.
  const int64_t grain = std::max<int64_t>(1, (int64_t{16} * 1024) / (token_size + 64 * half));
  parallel_for(tokens, grain, [&](int64_t t0, int64_t t1) {
    float cos_t[kMaxHalf], sin_t[kMaxHalf];
    for (int64_t t = t0; t < t1; ++t) {
      const double pos = positions[t];
      for (int64_t i = 0; i < half; ++i) {
        const double angle = pos * inv_freq[i];
        cos_t[i] = static_cast<float>(std::cos(angle));
        sin_t[i] = static_cast<float>(inverse ? -std::sin(angle) : std::sin(angle));
      }
      for (int64_t h = 0; h < s.heads; ++h) {
        const float* xh = x + t * token_size + h * s.head_dim;
        float* yh = y + t * token_size + h * s.head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const float a = xh[i], b = xh[i + half];  // read both before writing: y may alias x
          yh[i] = a * cos_t[i] - b * sin_t[i];
          yh[i + half] = b * cos_t[i] + a * sin_t[i];
        }
      }
    }
  });
}

}  // namespace peft::kernels
