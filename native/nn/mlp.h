// The feed-forward part of a transformer block as a module: gated (SwiGLU: down(silu(gate(x)) ⊙
// up(x)), Llama; gate and up as one fused projection, Phi-3; GeGLU with tanh-GELU, Gemma) or plain
// (down(gelu(fc(x))), GPT-2 with tanh-GELU, BERT with erf-GELU). Its projections are nn::Linear modules
// (owned by the model) that adapters attach to.
#pragma once
#include <cstdint>

#include "nn/adapter_selection.h"
#include "nn/buffers.h"
#include "nn/linear.h"

namespace peft::nn {

// Gated SiLU, gated tanh-GELU (Gemma); plain tanh-GELU (GPT-2), plain erf-GELU (BERT).
enum class MlpKind { SwiGlu, GeGlu, GeluTanh, GeluErf };

struct MlpCache {
  TensorPtr gate;  // [m, F] gate(x) (plain: fc(x))
  TensorPtr up;    // [m, F] up(x) (gated only)
  TensorPtr act;   // [m, F] the down projection's input
  LinearCache gate_proj, up_proj, down_proj, gate_up_proj;
};

class Mlp {
 public:
  Mlp() = default;
  // Gated: gate and up [F, hidden], down [hidden, F]; or gate and up null and gate_up [2F, hidden]
  // (the gate's rows, then the up's). Plain: gate is the first projection (fc), up null.
  Mlp(MlpKind kind, const Linear* gate, const Linear* up, const Linear* down, const Linear* gate_up = nullptr);

  // x: [m, hidden] → out: [m, hidden]. train: keep what the backward needs in cache.
  void forward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* x, float* out, MlpCache& cache, bool train) const;
  // dy: [m, hidden]; x: the forward's input. below_down: something under the down projection trains
  // (else only its gradients are made). dx: [m, hidden] written, or null.
  void backward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* dy, const float* x, const MlpCache& cache,
                bool below_down, float* dx, Workspace& ws) const;

 private:
  MlpKind kind_ = MlpKind::SwiGlu;
  const Linear *gate_ = nullptr, *up_ = nullptr, *down_ = nullptr, *gate_up_ = nullptr;
  int64_t width() const { return gate_up_ ? gate_up_->out_features() / 2 : gate_->out_features(); }
  bool gated() const { return kind_ == MlpKind::SwiGlu || kind_ == MlpKind::GeGlu; }
};

}  // namespace peft::nn
