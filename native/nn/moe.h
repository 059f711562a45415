// A sparse mixture-of-experts feed-forward (Mixtral): a router [experts, hidden] scores every token,
// the top k experts (SwiGLU MLPs, nn::Mlp) each run on the tokens routed to them, and their outputs
// are summed with the routing weights: the softmax over all experts, kept for the top k and
// renormalized to sum to 1 (Mixtral), or not (normalize = false). The router and every expert's
// projections are nn::Linear modules, so LoRA attaches to them by name.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/adapter_selection.h"
#include "nn/buffers.h"
#include "nn/linear.h"
#include "nn/mlp.h"

namespace peft::nn {

struct MoeCache {
  TensorPtr probs;                // [m, experts] softmax of the router's scores
  std::vector<int32_t> chosen;    // [m, k] the experts of each token, best first
  std::vector<float> weights;     // [m, k] their routing weights
  LinearCache router;
  struct Expert {
    std::vector<int64_t> rows;    // the tokens routed to it, ascending
    std::vector<int32_t> slots;   // each one's place in its token's top k
    AdapterSelection sel;         // the selection for the gathered rows (one adapter per row when mixed)
    TensorPtr x, y;               // [rows, hidden] its input rows and output
    MlpCache mlp;
  };
  std::vector<Expert> experts;
};

class Moe {
 public:
  Moe() = default;
  // router: [experts, hidden]; experts: gated MLPs over hidden; top_k in [1, experts].
  Moe(const Linear* router, std::vector<Mlp> experts, int64_t top_k, bool normalize);

  // x: [m, hidden] → out: [m, hidden]. train: keep what the backward needs.
  void forward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* x, float* out, MoeCache& cache, bool train) const;
  // dy: [m, hidden]; x: the forward's input. below_down: something under the experts' down
  // projections trains (else only those get gradients). dx: [m, hidden] written, or null.
  void backward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* dy, const float* x, const MoeCache& cache,
                bool below_down, float* dx, Workspace& ws) const;

 private:
  const Linear* router_ = nullptr;
  std::vector<Mlp> experts_;
  int64_t top_k_ = 1;
  bool normalize_ = true;
  int64_t hidden() const { return router_->in_features(); }
  int64_t count() const { return static_cast<int64_t>(experts_.size()); }
};

}  // namespace peft::nn
