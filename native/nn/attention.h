// Multi-head self-attention as a module: q/k/v projections (separate, or one fused projection),
// optional RMSNorm of each query and key head (Qwen3's q_norm / k_norm), RoPE, grouped-query
// attention with an optional sliding window and score soft-capping, prefix-tuning keys and values, an optional KV cache,
// and the output projection. The projections are nn::Linear modules (owned by the model) that adapters attach to.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "nn/adapter_selection.h"
#include "nn/buffers.h"
#include "nn/linear.h"
#include "nn/norm.h"
#include "nn/param.h"

namespace peft::nn {

// What every layer's attention shares in one forward pass.
struct AttentionStep {
  AdapterSelection sel;
  int64_t batch = 0, seq = 0;        // B rows of T new positions
  int64_t kv_len = 0;                // S keys each row attends over (prefix + tokens, or the whole cache)
  const int32_t* positions = nullptr;  // [B, T] RoPE positions of the new tokens
  kernels::AttentionMask mask{true, nullptr};
  Param* prefix = nullptr;           // prefix tuning: [V, layers · 2 · kv_dim] (V = S − T), or null
  int64_t layers = 0;                // of the model (the prefix's layout)
  bool train = false;                // a training forward: keep what the backward needs
};

// One layer's KV cache: k, v: [capacity, kv_heads, head_dim]; the new tokens' keys and values are
// written at positions start .. start + T − 1 and the queries attend over the first start + T.
// One request of a ragged batch (serving): rows row0 .. row0 + rows − 1 of the step's [1, M]
// activations are its new tokens; their keys and values go to its own cache k, v [capacity, kv_heads,
// head_dim] at start .. start + rows − 1, and they attend over that cache's first start + rows.
struct KvSegment {
  float* k = nullptr;
  float* v = nullptr;
  int64_t start = 0, row0 = 0, rows = 0;
};

struct KvSlot {
  float* k = nullptr;
  float* v = nullptr;
  int64_t start = 0;
  const std::vector<KvSegment>* segments = nullptr;  // a ragged batch: each request's cache (k, v, start unused)
};

struct AttentionConfig {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0;
  const double* inv_freq = nullptr;  // [head_dim / 2] RoPE frequencies (the model's), or null: no RoPE
  int64_t window = 0;                // sliding window: a query sees the last `window` positions only; 0 = all
  float scale = 0;                   // of the scores; 0 = 1 / sqrt(head_dim) (Gemma: query_pre_attn_scalar^-½)
  float softcap = 0;                 // scores → softcap · tanh(scores / softcap) (Gemma 2); 0 = none
};

struct AttentionCache {
  TensorPtr q;             // [B · T, heads · D] after the head norm and RoPE
  TensorPtr k, v;          // [B · T, kv_heads · D] (k after the head norm and RoPE)
  TensorPtr q_raw, k_raw;  // with head norms: [B · T, heads · D] / [B · T, kv_heads · D] the projections' outputs
  NormCache q_norm, k_norm;
  TensorPtr k_all, v_all;  // with a prefix: [B, S, kv_heads, D], the virtual positions first
  TensorPtr attn;          // [B · T, heads · D] before the output projection
  TensorPtr lse;           // [B, heads, T] softmax log-sum-exp
  LinearCache q_proj, k_proj, v_proj, qkv_proj, o_proj;
};

class Attention {
 public:
  Attention() = default;
  // Separate: q [heads · D, hidden], k and v [kv_heads · D, hidden], qkv null; fused: qkv
  // [(heads + 2 · kv_heads) · D, hidden] (q, then k, then v), q / k / v null. o: [hidden, heads · D].
  Attention(AttentionConfig config, int64_t layer, const Linear* q, const Linear* k, const Linear* v, const Linear* qkv,
            const Linear* o);

  // Head norms: each query / key head [head_dim] is normalized before RoPE (weights [head_dim]).
  void set_head_norms(Norm q_norm, Norm k_norm);

  int64_t q_dim() const { return c_.heads * c_.head_dim; }
  int64_t kv_dim() const { return c_.kv_heads * c_.head_dim; }
  // x: [B · T, hidden] (the normed input) → out: [B · T, hidden], the output projection's result.
  // kv: this layer's cache, or null.
  void forward(const kernels::Context& ctx, const AttentionStep& s, const float* x, float* out, AttentionCache& cache, const KvSlot* kv) const;
  // dy: [B · T, hidden]; x: the forward's input. below_out: something under the output projection
  // trains (else only its own gradients are made). dx: [B · T, hidden] written, or null. Adds the
  // projections' and the prefix's gradients.
  void backward(const kernels::Context& ctx, const AttentionStep& s, const float* dy, const float* x, const AttentionCache& cache, bool below_out,
                float* dx, Workspace& ws) const;

 private:
  AttentionConfig c_;
  int64_t layer_ = 0;
  const Linear *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *qkv_ = nullptr, *o_ = nullptr;
  Norm q_norm_, k_norm_;

  kernels::AttentionShape shape(const AttentionStep& s) const;
  kernels::AttentionMask mask(const AttentionStep& s) const;
  float scale() const;
  void project_qkv(const kernels::Context& ctx, const AttentionStep& s, const float* x, AttentionCache& cache) const;
  // The attention of a ragged batch: each segment's queries over its own cache (after storing its keys and values).
  void attend_segments(const kernels::Context& ctx, const std::vector<KvSegment>& segments, const AttentionCache& cache) const;
  void project_qkv_backward(const kernels::Context& ctx, const AttentionStep& s, const float* dq, const float* dk, const float* dv, const float* x,
                            const AttentionCache& cache, float* dx, Workspace& ws) const;
};

}  // namespace peft::nn
