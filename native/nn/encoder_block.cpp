#include "nn/encoder_block.h"

#include <cstring>

#include "core/error.h"
#include "core/profile.h"

namespace peft::nn {

EncoderBlock::EncoderBlock(Attention attention, const BottleneckSite* attn_site, Norm attn_norm, Mlp mlp,
                           const BottleneckSite* mlp_site, Norm out_norm)
    : attention_(std::move(attention)),
      mlp_(std::move(mlp)),
      attn_norm_(std::move(attn_norm)),
      out_norm_(std::move(out_norm)),
      attn_site_(attn_site),
      mlp_site_(mlp_site),
      hidden_(attn_norm_.dim()) {
  PEFT_CHECK(attn_site_ && mlp_site_, ErrorCode::Argument, "An encoder block needs its two adapter sites");
}

TensorPtr EncoderBlock::forward(const kernels::Context& ctx, const AttentionStep& s, TensorPtr x, EncoderBlockCache& c) const {
  const int64_t M = s.batch * s.seq, H = hidden_;
  c.x = x;
  c.pre1 = f32(ctx, {M, H});
  attention_.forward(ctx, s, p(x), p(c.pre1), c.attn, nullptr);
  apply_bottleneck_site(ctx, *attn_site_, s.sel, s.train, M, H, p(x), p(c.pre1), c.attn_out, c.attn_adapters);
  ctx.add_values(M * H, p(x), p(c.pre1));
  c.x2 = f32(ctx, {M, H});
  {
    PEFT_PROFILE_SCOPE(NormAct);
    attn_norm_.forward(ctx, M, p(c.pre1), p(c.x2), c.norm1);
  }
  c.pre2 = f32(ctx, {M, H});
  mlp_.forward(ctx, s.sel, M, p(c.x2), p(c.pre2), c.mlp, s.train);
  apply_bottleneck_site(ctx, *mlp_site_, s.sel, s.train, M, H, p(c.x2), p(c.pre2), c.mlp_out, c.mlp_adapters);
  ctx.add_values(M * H, p(c.x2), p(c.pre2));
  TensorPtr y = f32(ctx, {M, H});
  PEFT_PROFILE_SCOPE(NormAct);
  out_norm_.forward(ctx, M, p(c.pre2), p(y), c.norm2);
  return y;
}

void EncoderBlock::backward(const kernels::Context& ctx, const AttentionStep& s, const EncoderBlockCache& c, float* dx, Workspace& ws) const {
  const int64_t M = s.batch * s.seq, H = hidden_;
  float* d_pre = ws.get(ctx, "encoder.d_pre", M * H);
  float* d_x2 = ws.get(ctx, "encoder.d_x2", M * H);
  float* d_sub = ws.get(ctx, "encoder.d_sub", M * H);
  std::vector<float> d_sublayer, d_parallel;
  // y = norm2(pre2), pre2 = x2 + mlp(x2) (+ adapters). dx holds d y.
  {
    PEFT_PROFILE_SCOPE(NormAct);
    out_norm_.backward(ctx, M, dx, p(c.pre2), c.norm2, d_pre);
  }
  std::memcpy(d_x2, d_pre, sizeof(float) * M * H);
  const float* d_mlp =
      bottleneck_site_backward(ctx, *mlp_site_, s.sel, M, H, d_pre, p(c.x2), c.mlp_out, c.mlp_adapters, d_sublayer, d_parallel);
  if (!d_parallel.empty()) ctx.add_values(M * H, d_parallel.data(), d_x2);
  mlp_.backward(ctx, s.sel, M, d_mlp, p(c.x2), c.mlp, true, d_sub, ws);
  ctx.add_values(M * H, d_sub, d_x2);
  // x2 = norm1(pre1), pre1 = x + attn(x) (+ adapters).
  {
    PEFT_PROFILE_SCOPE(NormAct);
    attn_norm_.backward(ctx, M, d_x2, p(c.pre1), c.norm1, d_pre);
  }
  std::memcpy(dx, d_pre, sizeof(float) * M * H);
  const float* d_attn =
      bottleneck_site_backward(ctx, *attn_site_, s.sel, M, H, d_pre, p(c.x), c.attn_out, c.attn_adapters, d_sublayer, d_parallel);
  if (!d_parallel.empty()) ctx.add_values(M * H, d_parallel.data(), dx);
  attention_.backward(ctx, s, d_attn, p(c.x), c.attn, true, d_sub, ws);
  ctx.add_values(M * H, d_sub, dx);
}

}  // namespace peft::nn
