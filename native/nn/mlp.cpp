#include "nn/mlp.h"

#include "core/error.h"
#include "core/profile.h"
#include "kernels/activation.h"

namespace peft::nn {

Mlp::Mlp(MlpKind kind, const Linear* gate, const Linear* up, const Linear* down, const Linear* gate_up)
    : kind_(kind), gate_(gate), up_(up), down_(down), gate_up_(gate_up) {
  const bool parts = gate_up_ ? !gate_ && !up_ && gated() : gate_ && (up_ != nullptr) == gated();
  PEFT_CHECK(down_ && parts, ErrorCode::Argument,
             "A gated MLP needs gate and up projections (or one fused gate_up) and a down projection; a plain one a first "
             "and a down projection");
}

void Mlp::forward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* x, float* out, MlpCache& cache, bool train) const {
  const int64_t F = width();
  auto kept = [&](LinearCache& lc) { return train ? &lc : nullptr; };
  cache.gate = f32(ctx, {m, F});
  cache.act = f32(ctx, {m, F});
  if (gated()) cache.up = f32(ctx, {m, F});
  if (gate_up_) {
    TensorPtr both = f32(ctx, {m, 2 * F});
    {
      PEFT_PROFILE_SCOPE(Gemm);
      gate_up_->forward(ctx, sel, m, x, p(both), kept(cache.gate_up_proj));
    }
    ctx.copy_columns(m, F, 2 * F, 0, p(both), p(cache.gate));
    ctx.copy_columns(m, F, 2 * F, F, p(both), p(cache.up));
  } else {
    PEFT_PROFILE_SCOPE(Gemm);
    gate_->forward(ctx, sel, m, x, p(cache.gate), kept(cache.gate_proj));
    if (up_) up_->forward(ctx, sel, m, x, p(cache.up), kept(cache.up_proj));
  }
  {
    PEFT_PROFILE_SCOPE(NormAct);
    if (kind_ == MlpKind::SwiGlu)
      ctx.swiglu_forward(m * F, p(cache.gate), p(cache.up), p(cache.act));
    else if (kind_ == MlpKind::GeGlu)
      ctx.geglu_forward(m * F, p(cache.gate), p(cache.up), p(cache.act));
    else if (kind_ == MlpKind::GeluErf)
      ctx.gelu_erf_forward(m * F, p(cache.gate), p(cache.act));
    else
      ctx.gelu_tanh_forward(m * F, p(cache.gate), p(cache.act));
  }
  PEFT_PROFILE_SCOPE(Gemm);
  down_->forward(ctx, sel, m, p(cache.act), out, kept(cache.down_proj));
}

void Mlp::backward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* dy, const float* x, const MlpCache& cache,
                   bool below_down, float* dx, Workspace& ws) const {
  const int64_t F = width();
  float* d_act = below_down ? ws.get(ctx, "mlp.d_act", m * F) : nullptr;
  {
    PEFT_PROFILE_SCOPE(Gemm);
    down_->backward(ctx, sel, m, dy, p(cache.act), cache.down_proj, d_act, false);
  }
  if (!below_down) return;
  float* d_gate = ws.get(ctx, "mlp.d_gate", m * F);
  float* d_up = gated() ? ws.get(ctx, "mlp.d_up", m * F) : nullptr;
  {
    PEFT_PROFILE_SCOPE(NormAct);
    if (kind_ == MlpKind::SwiGlu)
      ctx.swiglu_backward(m * F, d_act, p(cache.gate), p(cache.up), d_gate, d_up);
    else if (kind_ == MlpKind::GeGlu)
      ctx.geglu_backward(m * F, d_act, p(cache.gate), p(cache.up), d_gate, d_up);
    else if (kind_ == MlpKind::GeluErf)
      ctx.gelu_erf_backward(m * F, d_act, p(cache.gate), d_gate);
    else
      ctx.gelu_tanh_backward(m * F, d_act, p(cache.gate), d_gate);
  }
  if (gate_up_) {
    float* d_both = ws.get(ctx, "mlp.d_gate_up", m * 2 * F);
    ctx.place_columns(m, F, 2 * F, 0, d_gate, d_both);
    ctx.place_columns(m, F, 2 * F, F, d_up, d_both);
    PEFT_PROFILE_SCOPE(Gemm);
    gate_up_->backward(ctx, sel, m, d_both, x, cache.gate_up_proj, dx, false);
    return;
  }
  PEFT_PROFILE_SCOPE(Gemm);
  gate_->backward(ctx, sel, m, d_gate, x, cache.gate_proj, dx, false);
  if (up_) up_->backward(ctx, sel, m, d_up, x, cache.up_proj, dx, true);
}

}  // namespace peft::nn
