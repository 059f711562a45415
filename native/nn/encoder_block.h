// One post-norm transformer encoder block as a module (BERT):
//   x2 = norm1(x + attn(x) (+ bottleneck adapters on the attention's output)),
//   y  = norm2(x2 + mlp(x2) (+ bottleneck adapters on the MLP's output)),
// with bidirectional attention (the step's mask is not causal) over the non-padding keys.
#pragma once
#include <cstdint>

#include "nn/attention.h"
#include "nn/bottleneck.h"
#include "nn/buffers.h"
#include "nn/mlp.h"
#include "nn/norm.h"

namespace peft::nn {

struct EncoderBlockCache {
  TensorPtr x;         // [m, hidden] the block's input
  TensorPtr pre1;      // [m, hidden] x + attention (+ adapters): norm1's input
  TensorPtr x2;        // [m, hidden] norm1's output
  TensorPtr pre2;      // [m, hidden] x2 + MLP (+ adapters): norm2's input
  TensorPtr attn_out;  // [m, hidden] attention output before its bottleneck adapters (only with them)
  TensorPtr mlp_out;   // [m, hidden] MLP output before its bottleneck adapters (only with them)
  NormCache norm1, norm2;
  AttentionCache attn;
  MlpCache mlp;
  BottleneckCache attn_adapters, mlp_adapters;
};

class EncoderBlock {
 public:
  EncoderBlock(Attention attention, const BottleneckSite* attn_site, Norm attn_norm, Mlp mlp,
               const BottleneckSite* mlp_site, Norm out_norm);

  // x: [B · T, hidden] → the block's output [B · T, hidden]; fills cache.
  TensorPtr forward(const kernels::Context& ctx, const AttentionStep& s, TensorPtr x, EncoderBlockCache& cache) const;
  // dx: [B · T, hidden], in: the gradient of the output; out: of the input. Adds every trainable
  // parameter's gradient.
  void backward(const kernels::Context& ctx, const AttentionStep& s, const EncoderBlockCache& cache, float* dx, Workspace& ws) const;

 private:
  Attention attention_;
  Mlp mlp_;
  Norm attn_norm_, out_norm_;
  const BottleneckSite *attn_site_, *mlp_site_;
  int64_t hidden_ = 0;
};

}  // namespace peft::nn
