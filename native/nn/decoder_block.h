// One pre-norm transformer decoder block as a module:
//   x2 = x + attn(norm1(x)) (+ bottleneck adapters on the attention's output),
//   y  = x2 + mlp(norm2(x2)) (+ bottleneck adapters on the MLP's output),
// optionally with sandwich norms on the sublayers' outputs (Gemma 2/3): attn_out_norm(attn(..)),
// mlp_out_norm(mlp(..)).
// Llama, GPT-2 and their relatives differ only in the kind of each part (see model/decoder_spec.h).
#pragma once
#include <cstdint>

#include "nn/attention.h"
#include "nn/bottleneck.h"
#include "nn/buffers.h"
#include "nn/mlp.h"
#include "nn/moe.h"
#include "nn/norm.h"

namespace peft::nn {

// What a training forward keeps. With activation checkpointing only x is kept and the backward
// runs the forward again.
struct BlockCache {
  TensorPtr x;         // [m, hidden] the block's input
  TensorPtr n1, n2;    // [m, hidden] the norms' outputs
  TensorPtr x2;        // [m, hidden] after the attention's residual
  TensorPtr attn_out;  // [m, hidden] attention output before its bottleneck adapters (only with them)
  TensorPtr mlp_out;   // [m, hidden] MLP output before its bottleneck adapters (only with them)
  TensorPtr attn_proj, mlp_proj;  // sandwich norms: [m, hidden] the sublayers' outputs before their norms
  NormCache norm1, norm2, attn_out_norm, mlp_out_norm;
  AttentionCache attn;
  MlpCache mlp;
  MoeCache moe;
  BottleneckCache attn_adapters, mlp_adapters;

  bool complete() const { return n1 != nullptr; }
};

class DecoderBlock {
 public:
  // The block's steps in forward order: a parameter's depth is its block's first depth plus its step,
  // and the backward stops below the lowest one that trains.
  static constexpr int kInputNorm = 0, kQkv = 1, kOutProj = 2, kPostNorm = 3, kGateUp = 4, kDown = 5, kSteps = 6;

  DecoderBlock(Norm input_norm, Attention attention, const BottleneckSite* attn_site, Norm post_norm, Mlp mlp,
               const BottleneckSite* mlp_site);

  // A mixture of experts in place of the MLP (Mixtral).
  void set_moe(Moe moe) { moe_ = std::move(moe); has_moe_ = true; }
  // Norms of the attention's and the MLP's outputs, before the residual (their weights [hidden]).
  void set_sandwich_norms(Norm attn_out_norm, Norm mlp_out_norm);

  // x: [B · T, hidden] → the block's output [B · T, hidden]. Fills cache (kept by the caller when
  // s.train). kv: this layer's KV cache, or null.
  TensorPtr forward(const kernels::Context& ctx, const AttentionStep& s, TensorPtr x, BlockCache& cache, const KvSlot* kv) const;
  // dx: [B · T, hidden], in: the gradient of the output; out: of the input. lowest: the lowest
  // trainable step relative to this block (negative: something below the block trains). Returns
  // false when nothing below the block needs a gradient (dx is then not meaningful).
  bool backward(const kernels::Context& ctx, const AttentionStep& s, const BlockCache& cache, int lowest, float* dx, Workspace& ws) const;

 private:
  Norm input_norm_, post_norm_, attn_out_norm_, mlp_out_norm_;
  Attention attention_;
  Mlp mlp_;
  Moe moe_;
  bool has_moe_ = false;
  // The feed-forward part: the MLP or the mixture of experts.
  void ffn_forward(const kernels::Context& ctx, const AttentionStep& s, int64_t m, const float* x, float* out, BlockCache& c) const;
  void ffn_backward(const kernels::Context& ctx, const AttentionStep& s, int64_t m, const float* dy, const float* x, const BlockCache& c,
                    bool below_down, float* dx, Workspace& ws) const;
  const BottleneckSite *attn_site_, *mlp_site_;
  int64_t hidden_ = 0;
};

}  // namespace peft::nn
