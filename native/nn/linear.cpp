#include "nn/linear.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "nn/batch_lora.h"
#include "nn/buffers.h"
#include "nn/linear_math.h"

namespace peft::nn {

namespace {

// v[i, j] *= scale[j] for the rows in `ranges`; v: [m, n], scale: [n]
void scale_columns(const kernels::Context& ctx, const std::vector<RowRange>& ranges, int64_t n, const float* scale,
                   float* v) {
  for (const RowRange& r : ranges) ctx.scale_columns(r.second - r.first, n, scale, v + r.first * n);
}

// g[j] += Σ_{rows in ranges} u[i, j] · v[i, j]; u, v: [m, n], g: [n]
void add_column_dots(const kernels::Context& ctx, const std::vector<RowRange>& ranges, int64_t n, const float* u,
                     const float* v, float* g) {
  for (const RowRange& r : ranges) ctx.add_column_dots(r.second - r.first, n, u + r.first * n, v + r.first * n, g);
}

void check_vector(const ParamPtr& p, int64_t n, const std::string& what) {
  PEFT_CHECK(p && p->value->dtype() == DType::F32 && p->value->shape() == Shape({n}), ErrorCode::Shape,
             "Expected an f32 " + what + " of shape [" + std::to_string(n) + "] but received " +
                 (p ? std::string(dtype_name(p->value->dtype())) + " " + shape_to_string(p->value->shape()) : "none"));
}

}  // namespace

Linear::Linear(std::string name, ParamPtr weight, ParamPtr bias)
    : name_(std::move(name)), weight_(std::move(weight)), bias_(std::move(bias)) {
  if (const QuantWeight* q = quant()) {
    q->validate(weight_->name);
    PEFT_CHECK(!weight_->trainable, ErrorCode::DType, "Cannot train the 4-bit weight " + weight_->name + ": 4-bit weights are frozen");
    out_ = q->rows();
    in_ = q->cols();
  } else {
    const Tensor& w = *weight_->value;
    PEFT_CHECK(w.ndim() == 2 && (w.dtype() == DType::F32 || w.dtype() == DType::BF16) && w.is_contiguous(),
               ErrorCode::Shape, "Expected a contiguous f32 or bf16 weight [out, in] for " + name_);
    out_ = w.dim(0);
    in_ = w.dim(1);
  }
  if (bias_) check_vector(bias_, out_, "bias for " + name_);
}

void Linear::forward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* x, float* y, LinearCache* cache) const {
  // Feed-forward IA3 scales the input of the base product.
  const float* input = x;
  std::shared_ptr<Tensor> scaled;
  for (const auto& [name, w] : ia3_) {
    if (w.merged || !w.feedforward) continue;
    const auto ranges = adapter_rows(sel, name, m);
    if (ranges.empty()) continue;
    if (!scaled) {
      scaled = f32(ctx, {m, in_});
      ctx.copy_values(m * in_, x, p(scaled));
    }
    scale_columns(ctx, ranges, in_, w.scale->data(), scaled->data_as<float>());
  }
  if (scaled) input = scaled->data_as<float>();

  base_product(ctx, m, input, y, false, out_);
  // DoRA without dropout reuses x·Wᵀ for its base term instead of computing it again.
  std::shared_ptr<Tensor> plain;
  for (const auto& [name, w] : lora_)
    if (!plain && dora_shares_base(sel, w) && !adapter_rows(sel, name, m).empty()) {
      plain = f32(ctx, {m, out_});
      ctx.copy_values(m * out_, y, p(plain));
    }
  add_bias(ctx, m, y, out_);
  // Other IA3 adapters scale the output (bias included, as PEFT does).
  std::shared_ptr<Tensor> unscaled;
  for (const auto& [name, w] : ia3_) {
    if (w.merged || w.feedforward) continue;
    const auto ranges = adapter_rows(sel, name, m);
    if (ranges.empty()) continue;
    if (cache && !unscaled) {
      unscaled = f32(ctx, {m, out_});
      ctx.copy_values(m * out_, y, p(unscaled));
    }
    scale_columns(ctx, ranges, out_, w.scale->data(), y);
  }
  if (cache) {
    cache->scaled_input = scaled;
    cache->unscaled_output = unscaled;
    cache->lora.clear();
  }
  for (const auto& [name, w] : lora_)
    if (!w.merged) lora_forward(ctx, sel, name, w, m, x, y, cache, plain);
  if (sel.batch) {
    PEFT_CHECK(!cache, ErrorCode::Unsupported, "Served adapters run in inference only, not in a training forward");
    apply_batch_lora(ctx, *sel.batch, name_, m, out_, in_, x, y);
  }
}

void Linear::backward(const kernels::Context& ctx, const AdapterSelection& sel, int64_t m, const float* dy, const float* x, const LinearCache& cache,
                      float* dx, bool accumulate_dx) const {
  // Output IA3: y = u ⊙ l, so dl = Σ dy ⊙ u and the base sees dy ⊙ l.
  const float* dy_base = dy;
  TensorPtr dy_scaled;  // [m, out]
  for (const auto& [name, w] : ia3_) {
    if (w.merged || w.feedforward) continue;
    const auto ranges = adapter_rows(sel, name, m);
    if (ranges.empty()) continue;
    PEFT_CHECK(cache.unscaled_output != nullptr, ErrorCode::Internal, "IA3 backward without its forward cache");
    if (float* g = w.scale->grad_data()) add_column_dots(ctx, ranges, out_, dy, cache.unscaled_output->data_as<float>(), g);
    if (!dy_scaled) {
      dy_scaled = f32(ctx, {m, out_});
      ctx.copy_values(m * out_, dy, p(dy_scaled));
    }
    scale_columns(ctx, ranges, out_, w.scale->data(), p(dy_scaled));
  }
  if (dy_scaled) dy_base = p(dy_scaled);
  const float* input = cache.scaled_input ? cache.scaled_input->data_as<float>() : x;

  add_base_grads(ctx, m, dy_base, out_, input);

  if (dx) {
    if (cache.scaled_input) {
      // Input IA3: the product saw x ⊙ l, so d(x ⊙ l) = dy·W gives dl = Σ x ⊙ d(x ⊙ l) and dx = d(x ⊙ l) ⊙ l.
      TensorPtr d_input = f32(ctx, {m, in_});
      base_product_dx(ctx, m, dy_base, p(d_input), false, out_);
      for (const auto& [name, w] : ia3_) {
        if (w.merged || !w.feedforward) continue;
        const auto ranges = adapter_rows(sel, name, m);
        if (float* g = w.scale->grad_data()) add_column_dots(ctx, ranges, in_, x, p(d_input), g);
        scale_columns(ctx, ranges, in_, w.scale->data(), p(d_input));
      }
      if (accumulate_dx) {
        ctx.add_values(m * in_, p(d_input), dx);
      } else {
        ctx.copy_values(m * in_, p(d_input), dx);
      }
    } else {
      // DoRA without dropout adds (dy ⊙ (g − 1))·W to dx (g = magnitude / norm): one product of
      // dy ⊙ (1 + Σ (g − 1)) with W carries both it and the layer's own dy·W.
      TensorPtr dy_gain;  // [m, out], from the context's memory (a fresh vector faulted in every call)
      std::vector<float> gain_less_one;  // [out]
      for (const auto& [name, w] : lora_) {
        auto it = cache.lora.find(name);
        if (!dora_shares_base(sel, w) || it == cache.lora.end()) continue;
        if (!dy_gain) {
          dy_gain = f32(ctx, {m, out_});
          ctx.copy_values(m * out_, dy_base, p(dy_gain));
        }
        const float* mag = w.magnitude->data();
        const std::vector<float>& norm = it->second.norm;
        gain_less_one.resize(static_cast<size_t>(out_));
        for (int64_t o = 0; o < out_; ++o) gain_less_one[static_cast<size_t>(o)] = mag[o] / norm[static_cast<size_t>(o)] - 1.0f;
        float* gained = p(dy_gain);
        for (const RowRange& range : adapter_rows(sel, name, m))
          for (int64_t i = range.first; i < range.second; ++i)
            for (int64_t o = 0; o < out_; ++o) gained[i * out_ + o] += dy_base[i * out_ + o] * gain_less_one[static_cast<size_t>(o)];
      }
      base_product_dx(ctx, m, dy_gain ? p(dy_gain) : dy_base, dx, accumulate_dx, out_);
    }
  }
  for (const auto& [name, w] : lora_) {
    if (w.merged) continue;
    auto it = cache.lora.find(name);
    if (it == cache.lora.end()) continue;  // the adapter applied to no row
    lora_backward(ctx, sel, name, w, m, dy, x, it->second, dx, dx && !cache.scaled_input && dora_shares_base(sel, w));
  }
}

void Linear::add_lora(const std::string& adapter, LoraWeights w) {
  PEFT_CHECK(ia3_.empty(), ErrorCode::Config, name_ + " already holds IA3 adapters; a layer holds adapters of one kind");
  PEFT_CHECK(!lora_.count(adapter), ErrorCode::Config, name_ + " already has an adapter named " + adapter);
  PEFT_CHECK(w.a && w.b, ErrorCode::Argument, "LoRA needs both A and B for " + name_);
  const Shape& as = w.a->value->shape();
  PEFT_CHECK(as.size() == 2 && as[1] == in_ && as[0] >= 1 && w.a->value->dtype() == DType::F32, ErrorCode::Shape,
             "Expected lora_A of shape [r, " + std::to_string(in_) + "] f32 for " + name_ + " but received " +
                 shape_to_string(as));
  const int64_t r = as[0];
  PEFT_CHECK(w.b->value->shape() == Shape({out_, r}) && w.b->value->dtype() == DType::F32, ErrorCode::Shape,
             "Expected lora_B of shape " + shape_to_string({out_, r}) + " f32 for " + name_ + " but received " +
                 shape_to_string(w.b->value->shape()));
  if (w.magnitude) check_vector(w.magnitude, out_, "DoRA magnitude for " + name_);
  PEFT_CHECK(w.dropout >= 0 && w.dropout < 1, ErrorCode::Range, "Expected a LoRA dropout in [0, 1) for " + name_);
  PEFT_CHECK(std::isfinite(w.scaling), ErrorCode::Range, "Expected a finite LoRA scaling for " + name_);
  lora_[adapter] = std::move(w);
}

void Linear::add_ia3(const std::string& adapter, Ia3Weights w) {
  PEFT_CHECK(lora_.empty(), ErrorCode::Config, name_ + " already holds LoRA adapters; a layer holds adapters of one kind");
  PEFT_CHECK(!ia3_.count(adapter), ErrorCode::Config, name_ + " already has an adapter named " + adapter);
  check_vector(w.scale, w.feedforward ? in_ : out_, "IA3 vector for " + name_);
  ia3_[adapter] = std::move(w);
}

bool Linear::remove_adapter(const std::string& adapter, bool keep_merged) {
  auto l = lora_.find(adapter);
  if (l != lora_.end()) {
    PEFT_CHECK(keep_merged || !l->second.merged, ErrorCode::Config, "Unmerge adapter " + adapter + " before deleting it");
    lora_.erase(l);
    return true;
  }
  auto i = ia3_.find(adapter);
  if (i != ia3_.end()) {
    PEFT_CHECK(keep_merged || !i->second.merged, ErrorCode::Config, "Unmerge adapter " + adapter + " before deleting it");
    ia3_.erase(i);
    return true;
  }
  return false;
}

}  // namespace peft::nn
