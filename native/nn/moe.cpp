#include "nn/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/profile.h"

namespace peft::nn {

namespace {

// The selection an expert's gathered rows see: the same adapters, one row per item when the batch
// names an adapter per row.
AdapterSelection gathered_selection(const AdapterSelection& sel, const std::vector<int64_t>& rows) {
  AdapterSelection out = sel;
  if (sel.per_row.empty()) return out;
  out.per_row.clear();
  for (int64_t r : rows) out.per_row.push_back(sel.per_row[static_cast<size_t>(r / sel.rows_per_item)]);
  out.rows_per_item = 1;
  return out;
}

}  // namespace

Moe::Moe(const Linear* router, std::vector<Mlp> experts, int64_t top_k, bool normalize)
    : router_(router), experts_(std::move(experts)), top_k_(top_k), normalize_(normalize) {
  PEFT_CHECK(router_ && router_->out_features() == count() && top_k_ >= 1 && top_k_ <= count(), ErrorCode::Config,
             "Expected a router over " + std::to_string(count()) + " experts and 1 to that many experts per token, but "
             "received " + std::to_string(top_k_));
}

void Moe::forward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* x, float* out, MoeCache& c, bool train) const {
  const int64_t H = hidden(), E = count(), K = top_k_;
  c.probs = f32(ctx, {m, E});
  {
    PEFT_PROFILE_SCOPE(Gemm);
    router_->forward(ctx, sel, m, x, p(c.probs), train ? &c.router : nullptr);
  }
  c.chosen.assign(static_cast<size_t>(m * K), 0);
  c.weights.assign(static_cast<size_t>(m * K), 0.0f);
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t i = 0; i < m; ++i) {
    float* row = p(c.probs) + i * E;
    const float max = *std::max_element(row, row + E);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += std::exp(static_cast<double>(row[e] - max));
    for (int64_t e = 0; e < E; ++e) row[e] = static_cast<float>(std::exp(static_cast<double>(row[e] - max)) / sum);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t a, int32_t b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    double kept = 0;
    for (int64_t j = 0; j < K; ++j) kept += row[order[static_cast<size_t>(j)]];
    for (int64_t j = 0; j < K; ++j) {
      c.chosen[static_cast<size_t>(i * K + j)] = order[static_cast<size_t>(j)];
      const float w = row[order[static_cast<size_t>(j)]];
      c.weights[static_cast<size_t>(i * K + j)] = normalize_ ? static_cast<float>(w / kept) : w;
    }
  }
  c.experts.assign(static_cast<size_t>(E), {});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < K; ++j) {
      MoeCache::Expert& ex = c.experts[static_cast<size_t>(c.chosen[static_cast<size_t>(i * K + j)])];
      ex.rows.push_back(i);
      ex.slots.push_back(static_cast<int32_t>(j));
    }
  std::memset(out, 0, sizeof(float) * m * H);
  for (int64_t e = 0; e < E; ++e) {
    MoeCache::Expert& ex = c.experts[static_cast<size_t>(e)];
    const auto n = static_cast<int64_t>(ex.rows.size());
    if (n == 0) continue;
    ex.sel = gathered_selection(sel, ex.rows);
    ex.x = f32(ctx, {n, H});
    ex.y = f32(ctx, {n, H});
    for (int64_t r = 0; r < n; ++r) std::memcpy(p(ex.x) + r * H, x + ex.rows[r] * H, sizeof(float) * H);
    experts_[static_cast<size_t>(e)].forward(ctx, ex.sel, n, p(ex.x), p(ex.y), ex.mlp, train);
    for (int64_t r = 0; r < n; ++r) {
      const float w = c.weights[static_cast<size_t>(ex.rows[r] * K + ex.slots[r])];
      const float* y = p(ex.y) + r * H;
      float* o = out + ex.rows[r] * H;
      for (int64_t h = 0; h < H; ++h) o[h] += w * y[h];
    }
    if (!train) ex = MoeCache::Expert{};  // nothing to keep
  }
}

void Moe::backward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* dy, const float* x, const MoeCache& c,
                   bool below_down, float* dx, Workspace& ws) const {
  const int64_t H = hidden(), E = count(), K = top_k_;
  if (dx) std::memset(dx, 0, sizeof(float) * m * H);
  std::vector<double> d_weight(static_cast<size_t>(m * K), 0.0);  // ∂loss/∂(routing weight)
  for (int64_t e = 0; e < E; ++e) {
    const MoeCache::Expert& ex = c.experts[static_cast<size_t>(e)];
    const auto n = static_cast<int64_t>(ex.rows.size());
    if (n == 0) continue;
    TensorPtr d_y = f32(ctx, {n, H});
    for (int64_t r = 0; r < n; ++r) {
      const size_t slot = static_cast<size_t>(ex.rows[r] * K + ex.slots[r]);
      const float* g = dy + ex.rows[r] * H;
      const float* y = p(ex.y) + r * H;
      double dot = 0;
      for (int64_t h = 0; h < H; ++h) {
        p(d_y)[r * H + h] = c.weights[slot] * g[h];
        dot += static_cast<double>(g[h]) * y[h];
      }
      d_weight[slot] = dot;
    }
    float* d_x = below_down && dx ? ws.get(ctx, "moe.dx", n * H) : nullptr;
    experts_[static_cast<size_t>(e)].backward(ctx, ex.sel, n, p(d_y), p(ex.x), ex.mlp, below_down, d_x, ws);
    if (d_x)
      for (int64_t r = 0; r < n; ++r) ctx.add_values(H, d_x + r * H, dx + ex.rows[r] * H);
  }
  if (!below_down) return;
  // Through the routing weights to the router's scores: w_j = p_j / Σ_top p (or p_j), p = softmax(scores).
  TensorPtr d_scores = f32(ctx, {m, E});
  std::vector<double> d_prob(static_cast<size_t>(E));
  for (int64_t i = 0; i < m; ++i) {
    const float* prob = p(c.probs) + i * E;
    std::fill(d_prob.begin(), d_prob.end(), 0.0);
    double kept = 0, weighted = 0;
    for (int64_t j = 0; j < K; ++j) {
      kept += prob[c.chosen[static_cast<size_t>(i * K + j)]];
      weighted += d_weight[static_cast<size_t>(i * K + j)] * c.weights[static_cast<size_t>(i * K + j)];
    }
    for (int64_t j = 0; j < K; ++j) {
      const double g = d_weight[static_cast<size_t>(i * K + j)];
      d_prob[static_cast<size_t>(c.chosen[static_cast<size_t>(i * K + j)])] = normalize_ ? (g - weighted) / kept : g;
    }
    double dot = 0;
    for (int64_t e = 0; e < E; ++e) dot += prob[e] * d_prob[static_cast<size_t>(e)];
    for (int64_t e = 0; e < E; ++e) p(d_scores)[i * E + e] = static_cast<float>(prob[e] * (d_prob[static_cast<size_t>(e)] - dot));
  }
  PEFT_PROFILE_SCOPE(Gemm);
  router_->backward(ctx, sel, m, p(d_scores), x, c.router, dx, true);
}

}  // namespace peft::nn
