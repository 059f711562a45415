#include "nn/prefix_kv.h"

#include <cstring>

namespace peft::nn {

void join_prefix(const kernels::Context& ctx, const Param& prefix, int64_t layer, int which, int64_t layers, int64_t kv_dim, int64_t B,
                 int64_t T, const float* tokens, float* all) {
  const int64_t V = prefix.value->dim(0), S = V + T, stride = layers * 2 * kv_dim;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < V; ++t)
      std::memcpy(all + (b * S + t) * kv_dim, prefix.data() + t * stride + (2 * layer + which) * kv_dim,
                  sizeof(float) * kv_dim);
    if (T > 0) std::memcpy(all + (b * S + V) * kv_dim, tokens + b * T * kv_dim, sizeof(float) * T * kv_dim);
  }
}

void split_prefix_grad(const kernels::Context& ctx, Param& prefix, int64_t layer, int which, int64_t layers, int64_t kv_dim, int64_t B, int64_t T,
                       const float* d_all, float* d_tokens) {
  const int64_t V = prefix.value->dim(0), S = V + T, stride = layers * 2 * kv_dim;
  float* g = prefix.grad_data();
  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(d_tokens + b * T * kv_dim, d_all + (b * S + V) * kv_dim, sizeof(float) * T * kv_dim);
    if (!g) continue;
    for (int64_t t = 0; t < V; ++t) {
      float* row = g + t * stride + (2 * layer + which) * kv_dim;
      const float* src = d_all + (b * S + t) * kv_dim;
      for (int64_t i = 0; i < kv_dim; ++i) row[i] += src[i];
    }
  }
}

}  // namespace peft::nn
