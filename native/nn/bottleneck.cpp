#include "nn/bottleneck.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/activation.h"
#include "kernels/gemm.h"
#include "nn/linear_math.h"

namespace peft::nn {

namespace {

void check(const ParamPtr& p, const Shape& shape, const std::string& what) {
  PEFT_CHECK(p && p->value->dtype() == DType::F32 && p->value->shape() == shape, ErrorCode::Shape,
             "Expected an f32 " + what + " of shape " + shape_to_string(shape) + " but received " +
                 (p ? std::string(dtype_name(p->value->dtype())) + " " + shape_to_string(p->value->shape()) : "none"));
}

}  // namespace

Activation parse_activation(const std::string& name) {
  if (name == "relu") return Activation::Relu;
  if (name == "gelu" || name == "gelu_new") return Activation::GeluTanh;
  if (name == "swish" || name == "silu") return Activation::Silu;
  if (name == "tanh") return Activation::Tanh;
  throw Error(ErrorCode::Config,
              "Expected one of relu, gelu, swish, tanh for non_linearity but received \"" + name + "\"");
}

void BottleneckSite::add(const std::string& adapter, BottleneckWeights w) {
  PEFT_CHECK(!adapters_.count(adapter), ErrorCode::Config, "The site already has an adapter named " + adapter);
  PEFT_CHECK(w.down_w && w.down_w->value->ndim() == 2, ErrorCode::Shape, "Expected a bottleneck down weight [b, H]");
  const int64_t b = w.down_w->value->dim(0);
  check(w.down_w, {b, hidden_}, "adapter_down weight");
  check(w.down_b, {b}, "adapter_down bias");
  check(w.up_w, {hidden_, b}, "adapter_up weight");
  check(w.up_b, {hidden_}, "adapter_up bias");
  adapters_[adapter] = std::move(w);
}

bool BottleneckSite::remove(const std::string& adapter) { return adapters_.erase(adapter) > 0; }

void BottleneckSite::forward(const kernels::Context& ctx, const AdapterSelection& sel, bool parallel, int64_t m, const float* x, float* out,
                             BottleneckCache* cache) const {
  const int64_t H = hidden_;
  for (const auto& [name, w] : adapters_) {
    if (w.parallel != parallel) continue;
    const auto ranges = adapter_rows(sel, name, m);
    if (ranges.empty()) continue;
    const int64_t b = w.down_w->value->dim(0);
    BottleneckCache::Entry e{std::make_shared<Tensor>(DType::F32, Shape{m, b}), std::make_shared<Tensor>(DType::F32, Shape{m, b})};
    for (const RowRange& r : ranges) {
      const int64_t rows = r.second - r.first;
      float* pre = e.pre->data_as<float>() + r.first * b;
      float* act = e.act->data_as<float>() + r.first * b;
      ctx.gemm(rows, b, H, matrix(x + r.first * H, H, false), matrix(*w.down_w->value, true), pre, b, 1.0f, false);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < b; ++j) pre[i * b + j] += w.down_b->data()[j];
      ctx.pointwise_forward(w.act, rows * b, pre, act);
      float* o = out + r.first * H;
      ctx.gemm(rows, H, b, matrix(act, b, false), matrix(*w.up_w->value, true), o, H, w.scaling, true);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < H; ++j) o[i * H + j] += w.scaling * w.up_b->data()[j];
    }
    if (cache) cache->entries[name] = e;
  }
}

void BottleneckSite::backward(const kernels::Context& ctx, const AdapterSelection& sel, bool parallel, int64_t m, const float* d_out, const float* x,
                              const BottleneckCache& cache, float* dx) const {
  const int64_t H = hidden_;
  for (const auto& [name, w] : adapters_) {
    if (w.parallel != parallel) continue;
    auto it = cache.entries.find(name);
    if (it == cache.entries.end()) continue;
    const int64_t b = w.down_w->value->dim(0);
    std::vector<float> d_act;
    for (const RowRange& r : adapter_rows(sel, name, m)) {
      const int64_t rows = r.second - r.first;
      const float* dy = d_out + r.first * H;
      const float* pre = it->second.pre->data_as<float>() + r.first * b;
      const float* act = it->second.act->data_as<float>() + r.first * b;
      // out += s·(act·upᵀ + up_b): d up = s·dyᵀ·act, d up_b = s·Σ dy, d act = s·dy·up.
      if (float* g = w.up_w->grad_data())
        ctx.gemm(H, b, rows, matrix(dy, H, true), matrix(act, b, false), g, b, w.scaling, true);
      if (float* g = w.up_b->grad_data())
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < H; ++j) g[j] += w.scaling * dy[i * H + j];
      d_act.assign(static_cast<size_t>(rows * b), 0.0f);
      ctx.gemm(rows, b, H, matrix(dy, H, false), matrix(*w.up_w->value, false), d_act.data(), b, w.scaling, false);
      ctx.pointwise_backward(w.act, rows * b, d_act.data(), pre, d_act.data());
      if (float* g = w.down_w->grad_data())
        ctx.gemm(b, H, rows, matrix(d_act.data(), b, true), matrix(x + r.first * H, H, false), g, H, 1.0f, true);
      if (float* g = w.down_b->grad_data())
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < b; ++j) g[j] += d_act[static_cast<size_t>(i * b + j)];
      if (dx)
        ctx.gemm(rows, H, b, matrix(d_act.data(), b, false), matrix(*w.down_w->value, false), dx + r.first * H, H, 1.0f,
                      true);
      (void)act;
    }
  }
}

void apply_bottleneck_site(const kernels::Context& ctx, const BottleneckSite& site, const AdapterSelection& sel, bool train, int64_t m, int64_t hidden,
                           const float* input, float* out, std::shared_ptr<Tensor>& kept, BottleneckCache& cache) {
  if (site.empty()) return;
  kept = std::make_shared<Tensor>(Tensor::uninitialized(DType::F32, {m, hidden}));
  std::memcpy(kept->data(), out, sizeof(float) * m * hidden);
  site.forward(ctx, sel, false, m, kept->data_as<float>(), out, train ? &cache : nullptr);
  site.forward(ctx, sel, true, m, input, out, train ? &cache : nullptr);
}

const float* bottleneck_site_backward(const kernels::Context& ctx, const BottleneckSite& site, const AdapterSelection& sel, int64_t m, int64_t hidden,
                                      const float* d_out, const float* input, const std::shared_ptr<Tensor>& kept,
                                      const BottleneckCache& cache, std::vector<float>& d_sublayer,
                                      std::vector<float>& d_parallel) {
  d_parallel.clear();
  if (site.empty()) return d_out;
  d_sublayer.assign(d_out, d_out + m * hidden);  // the sequential adapters' input is the sublayer's output
  site.backward(ctx, sel, false, m, d_out, kept->data_as<float>(), cache, d_sublayer.data());
  d_parallel.assign(static_cast<size_t>(m * hidden), 0.0f);
  site.backward(ctx, sel, true, m, d_out, input, cache, d_parallel.data());
  return d_sublayer.data();
}

}  // namespace peft::nn
