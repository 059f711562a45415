// Bottleneck adapters (Houlsby et al. 2019, Pfeiffer et al. 2020, He et al. 2022's parallel form):
// delta = s · up(act(down(x))), with down [b, H] + bias and up [H, b] + bias, added to a sublayer's
// output. One site (after attention or after the MLP) holds adapters by name.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/activation.h"
#include "kernels/backend.h"
#include "nn/adapter_selection.h"
#include "nn/param.h"

namespace peft::nn {

using Activation = kernels::Pointwise;

// Parses "relu" | "gelu" | "swish" / "silu" | "tanh"; E_CONFIG otherwise.
Activation parse_activation(const std::string& name);

struct BottleneckWeights {
  ParamPtr down_w;  // [b, H]
  ParamPtr down_b;  // [b]
  ParamPtr up_w;    // [H, b]
  ParamPtr up_b;    // [H]
  Activation act = Activation::Relu;
  float scaling = 1;
  bool parallel = false;  // input is the sublayer's input (parallel) rather than its output (sequential)
};

struct BottleneckCache {
  struct Entry {
    std::shared_ptr<Tensor> pre;  // [m, b] down(x) before the activation
    std::shared_ptr<Tensor> act;  // [m, b] after it
  };
  std::map<std::string, Entry> entries;
};

class BottleneckSite {
 public:
  explicit BottleneckSite(int64_t hidden) : hidden_(hidden) {}
  void add(const std::string& adapter, BottleneckWeights w);
  bool remove(const std::string& adapter);
  bool empty() const { return adapters_.empty(); }

  // out += delta(x) for the adapters of one mode (parallel or sequential) that the selection applies;
  // x, out: [m, H] (may alias only when no adapter of that mode runs). cache: kept for the backward or null.
  void forward(const kernels::Context& ctx, const AdapterSelection& sel, bool parallel, int64_t m, const float* x, float* out,
               BottleneckCache* cache) const;
  // d_out: [m, H], the gradient reaching the added delta; x: the forward's input. Adds d x into dx
  // (when not null) and the parameter gradients.
  void backward(const kernels::Context& ctx, const AdapterSelection& sel, bool parallel, int64_t m, const float* d_out, const float* x,
                const BottleneckCache& cache, float* dx) const;

 private:
  int64_t hidden_;
  std::map<std::string, BottleneckWeights> adapters_;
};

// A sublayer's output with a site's adapters: out [m, hidden] += the sequential adapters on out and
// the parallel ones on input [m, hidden]; `kept` gets out before them (only when the site has adapters).
void apply_bottleneck_site(const kernels::Context& ctx, const BottleneckSite& site, const AdapterSelection& sel, bool train, int64_t m, int64_t hidden,
                           const float* input, float* out, std::shared_ptr<Tensor>& kept, BottleneckCache& cache);
// d_out [m, hidden]: the gradient reaching the site's output. Returns the gradient reaching the
// sublayer's own output (d_out itself, or d_sublayer filled) and fills d_parallel [m, hidden] with
// the parallel adapters' gradient into their input (left empty without adapters).
const float* bottleneck_site_backward(const kernels::Context& ctx, const BottleneckSite& site, const AdapterSelection& sel, int64_t m, int64_t hidden,
                                      const float* d_out, const float* input, const std::shared_ptr<Tensor>& kept,
                                      const BottleneckCache& cache, std::vector<float>& d_sublayer,
                                      std::vector<float>& d_parallel);

}  // namespace peft::nn
