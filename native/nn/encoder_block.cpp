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

TensorPtr EncoderBlock::forward(const AttentionStep& s, TensorPtr x, EncoderBlockCache& c) const {
  const int64_t M = s.batch * s.seq, H = hidden_;
  c.x = x;
  c.pre1 = f32({M, H});
  attention_.forward(s, p(x), p(c.pre1), c.attn, nullptr);
  apply_bottleneck_site(*attn_site_, s.sel, s.train, M, H, p(x), p(c.pre1), c.attn_out, c.attn_adapters);
  add_into(M * H, p(x), p(c.pre1));
  c.x2 = f32({M, H});
  {
    PEFT_PROFILE_SCOPE(NormAct);
    attn_norm_.forward(M, p(c.pre1), p(c.x2), c.norm1);
  }
  c.pre2 = f32({M, H});
  mlp_.forward(s.sel, M, p(c.x2), p(c.pre2), c.mlp, s.train);
  apply_bottleneck_site(*mlp_site_, s.sel, s.train, M, H, p(c.x2), p(c.pre2), c.mlp_out, c.mlp_adapters);
  add_into(M * H, p(c.x2), p(c.pre2));
  TensorPtr y = f32({M, H});
  PEFT_PROFILE_SCOPE(NormAct);
  out_norm_.forward(M, p(c.pre2), p(y), c.norm2);
  return y;
}

void EncoderBlock::backward(const AttentionStep& s, const EncoderBlockCache& c, float* dx, Workspace& ws) const {
  const int64_t M = s.batch * s.seq, H = hidden_;
  float* d_pre = ws.get("encoder.d_pre", M * H);
  float* d_x2 = ws.get("encoder.d_x2", M * H);
  float* d_sub = ws.get("encoder.d_sub", M * H);
  std::vector<float> d_sublayer, d_parallel;
  // y = norm2(pre2), pre2 = x2 + mlp(x2) (+ adapters). dx holds d y.
  {
    PEFT_PROFILE_SCOPE(NormAct);
    out_norm_.backward(M, dx, p(c.pre2), c.norm2, d_pre);
  }
  std::memcpy(d_x2, d_pre, sizeof(float) * M * H);
  const float* d_mlp =
      bottleneck_site_backward(*mlp_site_, s.sel, M, H, d_pre, p(c.x2), c.mlp_out, c.mlp_adapters, d_sublayer, d_parallel);
  if (!d_parallel.empty()) add_into(M * H, d_parallel.data(), d_x2);
  mlp_.backward(s.sel, M, d_mlp, p(c.x2), c.mlp, true, d_sub, ws);
  add_into(M * H, d_sub, d_x2);
  // x2 = norm1(pre1), pre1 = x + attn(x) (+ adapters).
  {
    PEFT_PROFILE_SCOPE(NormAct);
    attn_norm_.backward(M, d_x2, p(c.pre1), c.norm1, d_pre);
  }
  std::memcpy(dx, d_pre, sizeof(float) * M * H);
  const float* d_attn =
      bottleneck_site_backward(*attn_site_, s.sel, M, H, d_pre, p(c.x), c.attn_out, c.attn_adapters, d_sublayer, d_parallel);
  if (!d_parallel.empty()) add_into(M * H, d_parallel.data(), dx);
  attention_.backward(s, d_attn, p(c.x), c.attn, true, d_sub, ws);
  add_into(M * H, d_sub, dx);
}

}  // namespace peft::nn
