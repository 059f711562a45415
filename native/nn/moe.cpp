#include "nn/moe.h"

#include <cstring>

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

// The routing weight of each of an expert's gathered rows.
std::vector<float> routing_weights(const MoeCache& c, const MoeCache::Expert& ex, int64_t K) {
  std::vector<float> w(ex.rows.size());
  for (size_t r = 0; r < w.size(); ++r) w[r] = c.weights[static_cast<size_t>(ex.rows[r] * K + ex.slots[r])];
  return w;
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
  ctx.moe_route(m, E, K, normalize_, p(c.probs), c.chosen.data(), c.weights.data());
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
    ctx.gather_rows(n, H, ex.rows.data(), x, p(ex.x));
    experts_[static_cast<size_t>(e)].forward(ctx, ex.sel, n, p(ex.x), p(ex.y), ex.mlp, train);
    const std::vector<float> w = routing_weights(c, ex, K);
    ctx.scatter_add_rows(n, H, ex.rows.data(), w.data(), p(ex.y), out);
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
    const std::vector<float> w = routing_weights(c, ex, K);
    std::vector<double> dots(static_cast<size_t>(n));
    ctx.gather_rows_scaled_dot(n, H, ex.rows.data(), w.data(), dy, p(ex.y), p(d_y), dots.data());
    for (int64_t r = 0; r < n; ++r) d_weight[static_cast<size_t>(ex.rows[r] * K + ex.slots[r])] = dots[static_cast<size_t>(r)];
    float* d_x = below_down && dx ? ws.get(ctx, "moe.dx", n * H) : nullptr;
    experts_[static_cast<size_t>(e)].backward(ctx, ex.sel, n, p(d_y), p(ex.x), ex.mlp, below_down, d_x, ws);
    if (d_x) ctx.scatter_add_rows(n, H, ex.rows.data(), nullptr, d_x, dx);
  }
  if (!below_down) return;
  // Through the routing weights to the router's scores.
  TensorPtr d_scores = f32(ctx, {m, E});
  ctx.moe_route_backward(m, E, K, normalize_, p(c.probs), c.chosen.data(), c.weights.data(), d_weight.data(), p(d_scores));
  PEFT_PROFILE_SCOPE(Gemm);
  router_->backward(ctx, sel, m, p(d_scores), x, c.router, dx, true);
}

}  // namespace peft::nn
