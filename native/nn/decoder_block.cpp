#include "nn/decoder_block.h"

#include <cstring>

#include "core/error.h"
#include "core/profile.h"

namespace peft::nn {

DecoderBlock::DecoderBlock(Norm input_norm, Attention attention, const BottleneckSite* attn_site, Norm post_norm, Mlp mlp,
                           const BottleneckSite* mlp_site)
    : input_norm_(std::move(input_norm)),
      post_norm_(std::move(post_norm)),
      attention_(std::move(attention)),
      mlp_(std::move(mlp)),
      attn_site_(attn_site),
      mlp_site_(mlp_site),
      hidden_(input_norm_.dim()) {
  PEFT_CHECK(attn_site_ && mlp_site_, ErrorCode::Argument, "A decoder block needs its two adapter sites");
}

void DecoderBlock::set_sandwich_norms(Norm attn_out_norm, Norm mlp_out_norm) {
  PEFT_CHECK(attn_out_norm.dim() == hidden_ && mlp_out_norm.dim() == hidden_, ErrorCode::Shape,
             "Expected sandwich norms over the hidden size (" + std::to_string(hidden_) + ")");
  attn_out_norm_ = std::move(attn_out_norm);
  mlp_out_norm_ = std::move(mlp_out_norm);
}

void DecoderBlock::ffn_forward(const kernels::Context& ctx, const AttentionStep& s, int64_t m, const float* x, float* out, BlockCache& c) const {
  if (has_moe_)
    moe_.forward(ctx, s.sel, m, x, out, c.moe, s.train);
  else
    mlp_.forward(ctx, s.sel, m, x, out, c.mlp, s.train);
}

void DecoderBlock::ffn_backward(const kernels::Context& ctx, const AttentionStep& s, int64_t m, const float* dy, const float* x, const BlockCache& c,
                                bool below_down, float* dx, Workspace& ws) const {
  if (has_moe_)
    moe_.backward(ctx, s.sel, m, dy, x, c.moe, below_down, dx, ws);
  else
    mlp_.backward(ctx, s.sel, m, dy, x, c.mlp, below_down, dx, ws);
}

TensorPtr DecoderBlock::forward(const kernels::Context& ctx, const AttentionStep& s, TensorPtr x, BlockCache& c, const KvSlot* kv) const {
  const int64_t M = s.batch * s.seq, H = hidden_;
  c.x = x;
  c.n1 = f32(ctx, {M, H});
  {
    PEFT_PROFILE_SCOPE(NormAct);
    input_norm_.forward(ctx, M, p(x), p(c.n1), c.norm1);
  }
  c.x2 = f32(ctx, {M, H});
  if (attn_out_norm_.present()) {
    c.attn_proj = f32(ctx, {M, H});
    attention_.forward(ctx, s, p(c.n1), p(c.attn_proj), c.attn, kv);
    PEFT_PROFILE_SCOPE(NormAct);
    attn_out_norm_.forward(ctx, M, p(c.attn_proj), p(c.x2), c.attn_out_norm);
  } else {
    attention_.forward(ctx, s, p(c.n1), p(c.x2), c.attn, kv);
  }
  apply_bottleneck_site(ctx, *attn_site_, s.sel, s.train, M, H, p(c.n1), p(c.x2), c.attn_out, c.attn_adapters);
  ctx.add_values(M * H, p(x), p(c.x2));
  c.n2 = f32(ctx, {M, H});
  {
    PEFT_PROFILE_SCOPE(NormAct);
    post_norm_.forward(ctx, M, p(c.x2), p(c.n2), c.norm2);
  }
  TensorPtr y = f32(ctx, {M, H});
  if (mlp_out_norm_.present()) {
    c.mlp_proj = f32(ctx, {M, H});
    ffn_forward(ctx, s, M, p(c.n2), p(c.mlp_proj), c);
    PEFT_PROFILE_SCOPE(NormAct);
    mlp_out_norm_.forward(ctx, M, p(c.mlp_proj), p(y), c.mlp_out_norm);
  } else {
    ffn_forward(ctx, s, M, p(c.n2), p(y), c);
  }
  apply_bottleneck_site(ctx, *mlp_site_, s.sel, s.train, M, H, p(c.n2), p(y), c.mlp_out, c.mlp_adapters);
  ctx.add_values(M * H, p(c.x2), p(y));
  return y;
}

bool DecoderBlock::backward(const kernels::Context& ctx, const AttentionStep& s, const BlockCache& c, int lowest, float* dx, Workspace& ws) const {
  const int64_t M = s.batch * s.seq, H = hidden_;
  auto need = [&](int step) { return lowest < step; };   // does anything below this step train?
  auto reach = [&](int step) { return lowest <= step; };  // does this step or anything below train?
  float* dx2 = ws.get(ctx, "block.dx2", M * H);
  float* d_n = ws.get(ctx, "block.d_n", M * H);
  // MLP: y = x2 + mlp(n2) (+ adapters), n2 = norm2(x2). dx holds d y.
  std::memcpy(dx2, dx, sizeof(float) * M * H);
  std::vector<float> d_sublayer, d_parallel;
  const float* d_mlp = bottleneck_site_backward(ctx, *mlp_site_, s.sel, M, H, dx, p(c.n2), c.mlp_out, c.mlp_adapters, d_sublayer, d_parallel);
  if (mlp_out_norm_.present()) {  // through the sandwich norm to the MLP's own output
    float* d_proj = ws.get(ctx, "block.d_proj", M * H);
    PEFT_PROFILE_SCOPE(NormAct);
    mlp_out_norm_.backward(ctx, M, d_mlp, p(c.mlp_proj), c.mlp_out_norm, d_proj);
    d_mlp = d_proj;
  }
  ffn_backward(ctx, s, M, d_mlp, p(c.n2), c, need(kDown), need(kGateUp) ? d_n : nullptr, ws);
  if (need(kGateUp)) {
    if (!d_parallel.empty()) ctx.add_values(M * H, d_parallel.data(), d_n);
    float* d_x2 = need(kPostNorm) ? ws.get(ctx, "block.d_x2", M * H) : nullptr;
    {
      PEFT_PROFILE_SCOPE(NormAct);
      post_norm_.backward(ctx, M, d_n, p(c.x2), c.norm2, d_x2);
    }
    if (d_x2) ctx.add_values(M * H, d_x2, dx2);
  }
  if (!reach(kOutProj)) return false;
  // Attention: x2 = x + attn(n1) (+ adapters), n1 = norm1(x). dx2 holds d x2.
  const float* d_attn =
      bottleneck_site_backward(ctx, *attn_site_, s.sel, M, H, dx2, p(c.n1), c.attn_out, c.attn_adapters, d_sublayer, d_parallel);
  if (attn_out_norm_.present()) {
    float* d_proj = ws.get(ctx, "block.d_proj", M * H);
    PEFT_PROFILE_SCOPE(NormAct);
    attn_out_norm_.backward(ctx, M, d_attn, p(c.attn_proj), c.attn_out_norm, d_proj);
    d_attn = d_proj;
  }
  attention_.backward(ctx, s, d_attn, p(c.n1), c.attn, need(kOutProj), need(kQkv) ? d_n : nullptr, ws);
  if (!need(kQkv)) return false;
  if (!d_parallel.empty()) ctx.add_values(M * H, d_parallel.data(), d_n);
  {
    PEFT_PROFILE_SCOPE(NormAct);
    input_norm_.backward(ctx, M, d_n, p(c.x), c.norm1, need(kInputNorm) ? dx : nullptr);
  }
  if (!need(kInputNorm)) return false;
  ctx.add_values(M * H, dx2, dx);
  return true;
}

}  // namespace peft::nn
