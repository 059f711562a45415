#include "nn/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/profile.h"
#include "core/thread_pool.h"
#include "kernels/rope.h"
#include "nn/prefix_kv.h"

namespace peft::nn {

Attention::Attention(AttentionConfig config, int64_t layer, const Linear* q, const Linear* k, const Linear* v,
                     const Linear* qkv, const Linear* o)
    : c_(config), layer_(layer), q_(q), k_(k), v_(v), qkv_(qkv), o_(o) {
  PEFT_CHECK(o_ && (qkv_ ? !q_ && !k_ && !v_ : q_ && k_ && v_), ErrorCode::Argument,
             "An attention module needs q, k and v projections or one fused projection, and an output projection");
}

kernels::AttentionShape Attention::shape(const AttentionStep& s) const {
  return kernels::AttentionShape{s.batch, s.seq, s.kv_len, c_.heads, c_.kv_heads, c_.head_dim};
}

kernels::AttentionMask Attention::mask(const AttentionStep& s) const {
  kernels::AttentionMask m = s.mask;
  m.window = c_.window;
  m.softcap = c_.softcap;
  return m;
}

void Attention::set_head_norms(Norm q_norm, Norm k_norm) {
  PEFT_CHECK(q_norm.dim() == c_.head_dim && k_norm.dim() == c_.head_dim, ErrorCode::Shape,
             "Expected query and key norms over head_dim (" + std::to_string(c_.head_dim) + ")");
  q_norm_ = std::move(q_norm);
  k_norm_ = std::move(k_norm);
}

float Attention::scale() const {
  return c_.scale > 0 ? c_.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(c_.head_dim)));
}

void Attention::project_qkv(const kernels::Context& ctx, const AttentionStep& s, const float* x, AttentionCache& cache) const {
  const int64_t M = s.batch * s.seq, qd = q_dim(), kd = kv_dim();
  auto kept = [&](LinearCache& lc) { return s.train ? &lc : nullptr; };
  cache.q = f32(ctx, {M, qd});
  cache.k = f32(ctx, {M, kd});
  cache.v = f32(ctx, {M, kd});
  PEFT_PROFILE_SCOPE(Gemm);
  if (!qkv_) {
    q_->forward(ctx, s.sel, M, x, p(cache.q), kept(cache.q_proj));
    k_->forward(ctx, s.sel, M, x, p(cache.k), kept(cache.k_proj));
    v_->forward(ctx, s.sel, M, x, p(cache.v), kept(cache.v_proj));
    return;
  }
  const int64_t width = qd + 2 * kd;
  TensorPtr qkv = f32(ctx, {M, width});
  qkv_->forward(ctx, s.sel, M, x, p(qkv), kept(cache.qkv_proj));
  ctx.copy_columns(M, qd, width, 0, p(qkv), p(cache.q));
  ctx.copy_columns(M, kd, width, qd, p(qkv), p(cache.k));
  ctx.copy_columns(M, kd, width, qd + kd, p(qkv), p(cache.v));
}

void Attention::forward(const kernels::Context& ctx, const AttentionStep& s, const float* x, float* out, AttentionCache& cache, const KvSlot* kv) const {
  const int64_t B = s.batch, T = s.seq, M = B * T, kd = kv_dim(), V = s.prefix ? s.prefix->value->dim(0) : 0;
  project_qkv(ctx, s, x, cache);
  if (q_norm_.present()) {  // each head's vector normalized on its own: rows of head_dim
    PEFT_PROFILE_SCOPE(NormAct);
    cache.q_raw = cache.q;
    cache.k_raw = cache.k;
    cache.q = f32(ctx, {M, q_dim()});
    cache.k = f32(ctx, {M, kd});
    q_norm_.forward(ctx, M * c_.heads, p(cache.q_raw), p(cache.q), cache.q_norm);
    k_norm_.forward(ctx, M * c_.kv_heads, p(cache.k_raw), p(cache.k), cache.k_norm);
  }
  if (c_.inv_freq) {
    PEFT_PROFILE_SCOPE(NormAct);
    ctx.rope_apply({B, T, c_.heads, c_.head_dim}, p(cache.q), s.positions, c_.inv_freq, false, p(cache.q));
    ctx.rope_apply({B, T, c_.kv_heads, c_.head_dim}, p(cache.k), s.positions, c_.inv_freq, false, p(cache.k));
  }
  const float* keys = p(cache.k);
  const float* values = p(cache.v);
  if (V) {  // keys and values: the prefix's, then the tokens', per batch row
    cache.k_all = f32(ctx, {B, V + T, c_.kv_heads, c_.head_dim});
    cache.v_all = f32(ctx, {B, V + T, c_.kv_heads, c_.head_dim});
    join_prefix(ctx, *s.prefix, layer_, 0, s.layers, kd, B, T, p(cache.k), p(cache.k_all));
    join_prefix(ctx, *s.prefix, layer_, 1, s.layers, kd, B, T, p(cache.v), p(cache.v_all));
    keys = p(cache.k_all);
    values = p(cache.v_all);
  }
  if (kv && kv->segments) {
    cache.attn = f32(ctx, {M, q_dim()});
    attend_segments(ctx, *kv->segments, cache);
    PEFT_PROFILE_SCOPE(Gemm);
    o_->forward(ctx, s.sel, M, p(cache.attn), out, nullptr);
    return;
  }
  if (kv) {  // batch 1: append the new keys and values, attend over everything cached
    std::memcpy(kv->k + kv->start * kd, p(cache.k), sizeof(float) * T * kd);
    std::memcpy(kv->v + kv->start * kd, p(cache.v), sizeof(float) * T * kd);
    keys = kv->k;
    values = kv->v;
  }
  cache.attn = f32(ctx, {M, q_dim()});
  cache.lse = f32(ctx, {B, c_.heads, T});
  {
    PEFT_PROFILE_SCOPE(Attention);
    ctx.attention_forward(shape(s), mask(s), scale(), p(cache.q), keys, values, p(cache.attn), p(cache.lse));
  }
  PEFT_PROFILE_SCOPE(Gemm);
  o_->forward(ctx, s.sel, M, p(cache.attn), out, s.train ? &cache.o_proj : nullptr);
}

void Attention::attend_segments(const kernels::Context& ctx, const std::vector<KvSegment>& segments, const AttentionCache& cache) const {
  PEFT_PROFILE_SCOPE(Attention);
  const int64_t kd = kv_dim(), qd = q_dim(), G = static_cast<int64_t>(segments.size());
  int64_t longest = 0;
  for (const KvSegment& g : segments) longest = std::max(longest, g.rows);
  kernels::AttentionMask m{true, nullptr};
  m.window = c_.window;
  m.softcap = c_.softcap;
  auto attend = [&](int64_t begin, int64_t end) {
    std::vector<float> lse(static_cast<size_t>(c_.heads * longest));  // [heads, rows] of one segment, not kept
    for (int64_t i = begin; i < end; ++i) {
      const KvSegment& g = segments[static_cast<size_t>(i)];
      std::memcpy(g.k + g.start * kd, p(cache.k) + g.row0 * kd, sizeof(float) * g.rows * kd);
      std::memcpy(g.v + g.start * kd, p(cache.v) + g.row0 * kd, sizeof(float) * g.rows * kd);
      const kernels::AttentionShape shape{1, g.rows, g.start + g.rows, c_.heads, c_.kv_heads, c_.head_dim};
      ctx.attention_forward(shape, m, scale(), p(cache.q) + g.row0 * qd, g.k, g.v, p(cache.attn) + g.row0 * qd, lse.data());
    }
  };
  // Decoding segments and short prompt chunks (one query block of the kernel) are too small to split
  // well: spread the segments over the threads (the kernel runs inline in each). A longer prompt
  // chunk splits its own heads and query blocks instead.
  // Segments per task: enough multiply-adds (scores and weighted values) that waking a thread pays.
  int64_t work = 0;
  for (const KvSegment& g : segments) work += 2 * c_.heads * c_.head_dim * g.rows * (g.start + g.rows);
  const int64_t grain = std::max<int64_t>(1, int64_t{32} * 1024 * G / std::max<int64_t>(1, work));
  if (G > 1 && longest <= 64)
    parallel_for(G, grain, attend);
  else
    attend(0, G);
}

void Attention::project_qkv_backward(const kernels::Context& ctx, const AttentionStep& s, const float* dq, const float* dk, const float* dv,
                                     const float* x, const AttentionCache& cache, float* dx, Workspace& ws) const {
  const int64_t M = s.batch * s.seq, qd = q_dim(), kd = kv_dim();
  PEFT_PROFILE_SCOPE(Gemm);
  if (!qkv_) {
    q_->backward(ctx, s.sel, M, dq, x, cache.q_proj, dx, false);
    k_->backward(ctx, s.sel, M, dk, x, cache.k_proj, dx, true);
    v_->backward(ctx, s.sel, M, dv, x, cache.v_proj, dx, true);
    return;
  }
  const int64_t width = qd + 2 * kd;
  float* dqkv = ws.get(ctx, "attention.dqkv", M * width);
  ctx.place_columns(M, qd, width, 0, dq, dqkv);
  ctx.place_columns(M, kd, width, qd, dk, dqkv);
  ctx.place_columns(M, kd, width, qd + kd, dv, dqkv);
  qkv_->backward(ctx, s.sel, M, dqkv, x, cache.qkv_proj, dx, false);
}

void Attention::backward(const kernels::Context& ctx, const AttentionStep& s, const float* dy, const float* x, const AttentionCache& cache,
                         bool below_out, float* dx, Workspace& ws) const {
  const int64_t B = s.batch, T = s.seq, M = B * T, qd = q_dim(), kd = kv_dim(), S = s.kv_len;
  const int64_t V = s.prefix ? s.prefix->value->dim(0) : 0;
  float* d_attn = below_out ? ws.get(ctx, "attention.d_attn", M * qd) : nullptr;
  {
    PEFT_PROFILE_SCOPE(Gemm);
    o_->backward(ctx, s.sel, M, dy, p(cache.attn), cache.o_proj, d_attn, false);
  }
  if (!below_out) return;
  float* dq = ws.get(ctx, "attention.dq", M * qd);
  float* dk = ws.get(ctx, "attention.dk", M * kd);
  float* dv = ws.get(ctx, "attention.dv", M * kd);
  {
    PEFT_PROFILE_SCOPE(Attention);
    if (V) {
      float* dk_all = ws.get(ctx, "attention.dk_all", B * S * kd);
      float* dv_all = ws.get(ctx, "attention.dv_all", B * S * kd);
      ctx.attention_backward(shape(s), mask(s), scale(), p(cache.q), p(cache.k_all), p(cache.v_all), p(cache.attn),
                                  d_attn, p(cache.lse), dq, dk_all, dv_all);
      split_prefix_grad(ctx, *s.prefix, layer_, 0, s.layers, kd, B, T, dk_all, dk);
      split_prefix_grad(ctx, *s.prefix, layer_, 1, s.layers, kd, B, T, dv_all, dv);
    } else {
      ctx.attention_backward(shape(s), mask(s), scale(), p(cache.q), p(cache.k), p(cache.v), p(cache.attn), d_attn,
                                  p(cache.lse), dq, dk, dv);
    }
  }
  if (c_.inv_freq) {
    PEFT_PROFILE_SCOPE(NormAct);
    ctx.rope_apply({B, T, c_.heads, c_.head_dim}, dq, s.positions, c_.inv_freq, true, dq);
    ctx.rope_apply({B, T, c_.kv_heads, c_.head_dim}, dk, s.positions, c_.inv_freq, true, dk);
  }
  if (q_norm_.present()) {
    PEFT_PROFILE_SCOPE(NormAct);
    float* dq_raw = ws.get(ctx, "attention.dq_raw", M * qd);
    float* dk_raw = ws.get(ctx, "attention.dk_raw", M * kd);
    q_norm_.backward(ctx, M * c_.heads, dq, p(cache.q_raw), cache.q_norm, dq_raw);
    k_norm_.backward(ctx, M * c_.kv_heads, dk, p(cache.k_raw), cache.k_norm, dk_raw);
    dq = dq_raw;
    dk = dk_raw;
  }
  project_qkv_backward(ctx, s, dq, dk, dv, x, cache, dx, ws);
}

}  // namespace peft::nn
