#include "kernels/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

namespace peft::kernels {

void moe_route(int64_t m, int64_t E, int64_t K, bool normalize, float* scores, int32_t* chosen, float* weights) {
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t i = 0; i < m; ++i) {
    float* row = scores + i * E;
    const float max = *std::max_element(row, row + E);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += std::exp(static_cast<double>(row[e] - max));
    for (int64_t e = 0; e < E; ++e) row[e] = static_cast<float>(std::exp(static_cast<double>(row[e] - max)) / sum);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    double kept = 0;
    for (int64_t j = 0; j < K; ++j) kept += row[order[static_cast<size_t>(j)]];
    for (int64_t j = 0; j < K; ++j) {
      chosen[i * K + j] = order[static_cast<size_t>(j)];
      const float w = row[order[static_cast<size_t>(j)]];
      weights[i * K + j] = normalize ? static_cast<float>(w / kept) : w;
    }
  }
}

void moe_route_backward(int64_t m, int64_t E, int64_t K, bool normalize, const float* probs, const int32_t* chosen,
                        const float* weights, const double* d_weight, float* d_scores) {
  // w_j = p_j / Σ_top p (or p_j), p = softmax(scores).
  std::vector<double> d_prob(static_cast<size_t>(E));
  for (int64_t i = 0; i < m; ++i) {
    const float* prob = probs + i * E;
    std::fill(d_prob.begin(), d_prob.end(), 0.0);
    double kept = 0, weighted = 0;
    for (int64_t j = 0; j < K; ++j) {
      kept += prob[chosen[i * K + j]];
      weighted += d_weight[i * K + j] * weights[i * K + j];
    }
    for (int64_t j = 0; j < K; ++j) {
      const double g = d_weight[i * K + j];
      d_prob[static_cast<size_t>(chosen[i * K + j])] = normalize ? (g - weighted) / kept : g;
    }
    double dot = 0;
    for (int64_t e = 0; e < E; ++e) dot += prob[e] * d_prob[static_cast<size_t>(e)];
    for (int64_t e = 0; e < E; ++e) d_scores[i * E + e] = static_cast<float>(prob[e] * (d_prob[static_cast<size_t>(e)] - dot));
  }
}

void gather_rows(int64_t n, int64_t H, const int64_t* rows, const float* src, float* dst) {
  for (int64_t r = 0; r < n; ++r) std::memcpy(dst + r * H, src + rows[r] * H, sizeof(float) * static_cast<size_t>(H));
}

void scatter_add_rows(int64_t n, int64_t H, const int64_t* rows, const float* scale, const float* src, float* dst) {
  for (int64_t r = 0; r < n; ++r) {
    float* o = dst + rows[r] * H;
    const float* y = src + r * H;
    if (scale) {
      const float w = scale[r];
      for (int64_t h = 0; h < H; ++h) o[h] += w * y[h];
    } else {
      for (int64_t h = 0; h < H; ++h) o[h] += y[h];
    }
  }
}

void gather_rows_scaled_dot(int64_t n, int64_t H, const int64_t* rows, const float* scale, const float* g,
                            const float* y, float* out, double* dot) {
  for (int64_t r = 0; r < n; ++r) {
    const float* gr = g + rows[r] * H;
    const float* yr = y + r * H;
    double d = 0;
    for (int64_t h = 0; h < H; ++h) {
      out[r * H + h] = scale[r] * gr[h];
      d += static_cast<double>(gr[h]) * yr[h];
    }
    dot[r] = d;
  }
}

}  // namespace peft::kernels
