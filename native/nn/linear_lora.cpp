// The LoRA and DoRA branches of a Linear, and merging adapters into its weight.
//   LoRA: y += s · dropout(x)·Aᵀ·Bᵀ
//   DoRA: with n = ‖W + s·B·A‖ per output row (a constant for the gradient, as in the paper) and
//         g = magnitude / n:  y += (g − 1) ⊙ dropout(x)·Wᵀ + g ⊙ s · dropout(x)·Aᵀ·Bᵀ
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/lowrank.h"
#include "nn/buffers.h"
#include "nn/dropout.h"
#include "nn/linear.h"
#include "nn/linear_math.h"

namespace peft::nn {

namespace {

// rows × cols of `x` starting at row0, with dropout applied when p > 0 (into `buffer`, [rows, cols],
// taken from the context's memory).
const float* dropped_rows(const kernels::Context& ctx, const AdapterSelection& sel, uint64_t stream, float p,
                          int64_t row0, int64_t rows, int64_t cols, const float* x, TensorPtr& buffer) {
  const float* src = x + row0 * cols;
  if (!sel.train || p <= 0) return src;
  buffer = f32(ctx, {rows, cols});
  dropout_rows(sel.seed, stream, p, row0, rows, cols, src, buffer->data_as<float>());
  return buffer->data_as<float>();
}

}  // namespace

std::vector<float> Linear::dora_norm(const LoraWeights& w) const {
  const int64_t r = w.a->value->dim(0);
  if (const QuantWeight* q = quant()) {
    // Rows of W + s·B·A a block at a time: a 4-bit W is never dequantized whole here.
    std::vector<float> norm(static_cast<size_t>(out_));
    const int64_t block = std::max<int64_t>(1, std::min<int64_t>(out_, (int64_t{1} << 18) / in_));
    std::vector<float> rows(static_cast<size_t>(block * in_));  // [block, in]
    for (int64_t o0 = 0; o0 < out_; o0 += block) {
      const int64_t nb = std::min(block, out_ - o0);
      q->dequantize_rows(o0, o0 + nb, rows.data());
      kernels::gemm(nb, in_, r, matrix(w.b->data() + o0 * r, r, false), matrix(w.a->data(), in_, false), rows.data(),
                    in_, w.scaling, true);
      for (int64_t o = 0; o < nb; ++o) {
        double sum = 0;
        for (int64_t i = 0; i < in_; ++i) sum += static_cast<double>(rows[o * in_ + i]) * rows[o * in_ + i];
        norm[static_cast<size_t>(o0 + o)] = static_cast<float>(std::sqrt(sum));
      }
    }
    return norm;
  }
  std::vector<float> full = weight_as_f32(*weight_->value);  // W + s·B·A, [out, in]
  kernels::gemm(out_, in_, r, matrix(w.b->data(), r, false), matrix(w.a->data(), in_, false), full.data(), in_,
                w.scaling, true);
  std::vector<float> norm(static_cast<size_t>(out_));
  for (int64_t o = 0; o < out_; ++o) {
    double sum = 0;
    for (int64_t i = 0; i < in_; ++i) sum += static_cast<double>(full[o * in_ + i]) * full[o * in_ + i];
    norm[static_cast<size_t>(o)] = static_cast<float>(std::sqrt(sum));
  }
  return norm;
}

void Linear::lora_forward(const kernels::Context& ctx, const AdapterSelection& sel, const std::string& name, const LoraWeights& w, int64_t m,
                          const float* x, float* y, LinearCache* cache, const std::shared_ptr<Tensor>& plain) const {
  const auto ranges = adapter_rows(sel, name, m);
  if (ranges.empty()) return;
  const int64_t r = w.a->value->dim(0);
  const uint64_t stream = dropout_stream(name_, name);
  LinearCache::Lora saved;
  saved.xa = ctx.zeros(DType::F32, {m, r});
  const bool dora = w.magnitude != nullptr;
  const bool shared_base = dora && plain && dora_shares_base(sel, w);
  if (dora) {
    saved.norm = dora_norm(w);
    saved.base = shared_base ? plain : f32(ctx, {m, out_});  // written whole by base_product
  }
  // Row-sized scratch comes from the context's memory: fresh std::vectors of [rows, out] were zero-filled
  // and page-faulted on every call, a third of DoRA's extra step time.
  TensorPtr dropped;   // [rows, in]
  TensorPtr lora_out;  // [rows, out]
  for (const RowRange& range : ranges) {
    const int64_t row0 = range.first, rows = range.second - range.first;
    const float* xd = dropped_rows(ctx, sel, stream, w.dropout, row0, rows, in_, x, dropped);
    float* xa = saved.xa->data_as<float>() + row0 * r;
    float* yr = y + row0 * out_;
    if (!dora) {
      ctx.lora_branch_forward(rows, out_, in_, r, xd, DType::F32, w.a->data(), w.b->data(), w.scaling, xa, yr, out_,
                                   true);
      continue;
    }
    float* base = saved.base->data_as<float>() + row0 * out_;
    if (!shared_base) base_product(ctx, rows, xd, base, false, out_);
    lora_out = f32(ctx, {rows, out_});
    ctx.lora_branch_forward(rows, out_, in_, r, xd, DType::F32, w.a->data(), w.b->data(), w.scaling, xa,
                                 p(lora_out), out_, false);
    ctx.dora_combine_forward(rows, out_, w.magnitude->data(), saved.norm.data(), base, p(lora_out), yr);
  }
  if (cache) cache->lora[name] = std::move(saved);
}

void Linear::lora_backward(const kernels::Context& ctx, const AdapterSelection& sel, const std::string& name, const LoraWeights& w, int64_t m,
                           const float* dy, const float* x, const LinearCache::Lora& saved, float* dx,
                           bool base_dx_folded) const {
  const auto ranges = adapter_rows(sel, name, m);
  const int64_t r = w.a->value->dim(0);
  const uint64_t stream = dropout_stream(name_, name);
  const bool dora = w.magnitude != nullptr;
  float* ga = w.a->grad_data();
  float* gb = w.b->grad_data();
  float* gm = dora ? w.magnitude->grad_data() : nullptr;
  std::vector<float> g;
  TensorPtr dropped;                   // [rows, in]
  TensorPtr d_lora, d_base, lora_out;  // [rows, out], from the context's memory (see lora_forward)
  TensorPtr dxd;                       // [rows, in]
  for (const RowRange& range : ranges) {
    const int64_t row0 = range.first, rows = range.second - range.first;
    const float* xa = saved.xa->data_as<float>() + row0 * r;
    const float* dyr = dy + row0 * out_;
    const float* d_branch = dyr;  // gradient reaching s·xa·Bᵀ
    if (dora) {
      // y += (g − 1) ⊙ base + g ⊙ lora with g = mag / n: dmag = Σ dy ⊙ (base + lora) / n.
      const float* mag = w.magnitude->data();
      const float* base = saved.base->data_as<float>() + row0 * out_;
      lora_out = f32(ctx, {rows, out_});
      ctx.gemm(rows, out_, r, matrix(xa, r, false), matrix(w.b->data(), r, true), p(lora_out), out_, w.scaling,
                    false);
      d_lora = f32(ctx, {rows, out_});
      d_base = f32(ctx, {rows, out_});
      ctx.dora_combine_backward(rows, out_, mag, saved.norm.data(), dyr, base, p(lora_out), p(d_lora), p(d_base), gm);
      d_branch = p(d_lora);
    }
    // dB = s · d_branchᵀ·xa; g = s · d_branch·B [rows, r]; dA = gᵀ·dropout(x); with no dropout mask and
    // no DoRA base term, dx += g·A too.
    g.resize(static_cast<size_t>(rows * r));
    const bool straight_dx = dx && !(sel.train && w.dropout > 0) && (!dora || base_dx_folded);
    const float* xd = ga || (dora && weight_->trainable) ? dropped_rows(ctx, sel, stream, w.dropout, row0, rows, in_, x, dropped)
                                                        : nullptr;
    ctx.lora_branch_backward(rows, out_, in_, r, d_branch, xd, DType::F32, xa, w.a->data(), w.b->data(), w.scaling,
                                  g.data(), ga, gb, straight_dx ? dx + row0 * in_ : nullptr, true);
    if (dora && weight_->trainable)
      ctx.gemm(out_, in_, rows, matrix(p(d_base), out_, true), matrix(xd, in_, false), weight_->grad_data(), in_,
                    1.0f, true);
    if (!dx || straight_dx) continue;
    // d dropout(x) = g·A (+ d_base·W for DoRA), then through the same dropout mask.
    dxd = f32(ctx, {rows, in_});
    ctx.gemm(rows, in_, r, matrix(g.data(), r, false), matrix(w.a->data(), in_, false), p(dxd), in_, 1.0f,
                  false);
    if (dora && !base_dx_folded) base_product_dx(ctx, rows, p(d_base), p(dxd), true, out_);
    if (sel.train && w.dropout > 0) dropout_rows(sel.seed, stream, w.dropout, row0, rows, in_, p(dxd), p(dxd));
    float* dxr = dx + row0 * in_;
    ctx.add_values(rows * in_, p(dxd), dxr);
  }
}

void Linear::merge(const std::string& adapter, bool requantize) {
  auto found = lora_.find(adapter);
  if (found != lora_.end()) {
    LoraWeights& w = found->second;
    PEFT_CHECK(!w.merged, ErrorCode::Config, "Adapter " + adapter + " is already merged into " + name_);
    const int64_t r = w.a->value->dim(0);
    std::vector<float> full = weight_values();  // [out, in]
    if (w.magnitude) w.merged_norm = dora_norm(w);
    kernels::gemm(out_, in_, r, matrix(w.b->data(), r, false), matrix(w.a->data(), in_, false), full.data(), in_,
                  w.scaling, true);
    if (w.magnitude)
      for (int64_t o = 0; o < out_; ++o) {
        const float g = w.magnitude->data()[o] / w.merged_norm[static_cast<size_t>(o)];
        for (int64_t i = 0; i < in_; ++i) full[o * in_ + i] *= g;
      }
    w.quant_before_merge = store_weight_values(full, requantize);
    w.merged = true;
    return;
  }
  auto it = ia3_.find(adapter);
  PEFT_CHECK(it != ia3_.end(), ErrorCode::Argument, name_ + " has no adapter named " + adapter);
  Ia3Weights& w = it->second;
  PEFT_CHECK(!w.merged, ErrorCode::Config, "Adapter " + adapter + " is already merged into " + name_);
  std::vector<float> full = weight_values();  // [out, in]
  const float* l = w.scale->data();
  for (int64_t o = 0; o < out_; ++o)
    for (int64_t i = 0; i < in_; ++i) full[o * in_ + i] *= w.feedforward ? l[i] : l[o];
  w.quant_before_merge = store_weight_values(full, requantize);
  if (bias_ && !w.feedforward)
    for (int64_t o = 0; o < out_; ++o) bias_->mutable_data()[o] *= l[o];
  w.merged = true;
}

void Linear::unmerge(const std::string& adapter) {
  auto found = lora_.find(adapter);
  if (found != lora_.end()) {
    LoraWeights& w = found->second;
    PEFT_CHECK(w.merged, ErrorCode::Config, "Adapter " + adapter + " is not merged into " + name_);
    w.merged = false;
    if (w.quant_before_merge) {  // the merge made a 4-bit W dense: the 4-bit weight it replaced comes back
      restore_quant(std::move(w.quant_before_merge));
      return;
    }
    const int64_t r = w.a->value->dim(0);
    std::vector<float> full = weight_values();  // [out, in]
    if (w.magnitude)
      for (int64_t o = 0; o < out_; ++o) {
        const float g = w.magnitude->data()[o] / w.merged_norm[static_cast<size_t>(o)];
        for (int64_t i = 0; i < in_; ++i) full[o * in_ + i] /= g;
      }
    kernels::gemm(out_, in_, r, matrix(w.b->data(), r, false), matrix(w.a->data(), in_, false), full.data(), in_,
                  -w.scaling, true);
    store_weight_values(full, true);
    return;
  }
  auto it = ia3_.find(adapter);
  PEFT_CHECK(it != ia3_.end(), ErrorCode::Argument, name_ + " has no adapter named " + adapter);
  Ia3Weights& w = it->second;
  PEFT_CHECK(w.merged, ErrorCode::Config, "Adapter " + adapter + " is not merged into " + name_);
  const float* l = w.scale->data();
  if (w.quant_before_merge) {
    restore_quant(std::move(w.quant_before_merge));
  } else {
    std::vector<float> full = weight_values();  // [out, in]
    // As PEFT does, divide by l + 1e-8 so that a zero entry does not give infinities.
    for (int64_t o = 0; o < out_; ++o)
      for (int64_t i = 0; i < in_; ++i) full[o * in_ + i] /= (w.feedforward ? l[i] : l[o]) + 1e-8f;
    store_weight_values(full, true);
  }
  if (bias_ && !w.feedforward)
    for (int64_t o = 0; o < out_; ++o) bias_->mutable_data()[o] /= l[o] + 1e-8f;
  w.merged = false;
}

}  // namespace peft::nn
