// Scaled dot-product attention with grouped-query heads, a causal mask and a key padding mask,
// forward and backward. The forward keeps only the log-sum-exp of each query row, so the backward
// recomputes the probabilities instead of storing a T x S matrix per head.
#pragma once
#include <cstdint>

namespace peft::kernels {

struct AttentionShape {
  int64_t batch;
  int64_t q_len;     // T: query positions
  int64_t kv_len;    // S: key positions (S >= T; the last T keys line up with the queries)
  int64_t q_heads;   // Hq
  int64_t kv_heads;  // Hkv; Hq is a multiple of Hkv (query head h reads kv head h / (Hq / Hkv))
  int64_t head_dim;  // D
};

struct AttentionMask {
  bool causal;               // query t sees keys s <= t + (S - T)
  const uint8_t* key_valid;  // [batch, S], 1 = attend, 0 = padding; null: all keys valid
  int64_t window = 0;        // sliding window (causal only): query t sees only keys s > t + (S - T) − window; 0 = none
  float softcap = 0;         // scores become softcap · tanh(scores / softcap) before the softmax (Gemma 2); 0 = none
};

// q: [B, T, Hq, D]; k, v: [B, S, Hkv, D]; out: [B, T, Hq, D]; lse: [B, Hq, T] (log-sum-exp of the
// scaled scores of each row; -inf for a row that sees no key, whose output is 0).
void attention_forward(const AttentionShape& s, const AttentionMask& mask, float scale, const float* q, const float* k,
                       const float* v, float* out, float* lse);

// dout, out: [B, T, Hq, D]; lse: [B, Hq, T] from the forward. Writes dq: [B, T, Hq, D],
// dk, dv: [B, S, Hkv, D] (overwritten).
void attention_backward(const AttentionShape& s, const AttentionMask& mask, float scale, const float* q,
                        const float* k, const float* v, const float* out, const float* dout, const float* lse,
                        float* dq, float* dk, float* dv);

}  // namespace peft::kernels
