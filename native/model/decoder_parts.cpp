#include "model/decoder_parts.h"

#include <cstring>

#include "core/error.h"
#include "kernels/convert.h"
#include "kernels/embedding.h"

namespace peft::model {

std::vector<int32_t> next_token_targets(const Tensor& labels, int64_t B, int64_t T) {
  std::vector<int32_t> targets(static_cast<size_t>(B * T), -100);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) targets[b * T + t] = labels.data_as<int32_t>()[b * T + t + 1];
  return targets;
}

void embed_tokens(const Tensor& table, const nn::Param* prompt, const std::map<std::string, nn::EmbeddingLora>& lora,
                  const nn::AdapterSelection& sel, const Tensor& ids, int64_t B, int64_t T, int64_t H, float* x) {
  const int64_t P = prompt ? prompt->value->dim(0) : 0, vocab = table.dim(0), n = T - P;
  for (int64_t b = 0; b < B; ++b) {
    if (P) std::memcpy(x + b * T * H, prompt->data(), sizeof(float) * P * H);
    const int32_t* row_ids = ids.data_as<int32_t>() + b * n;
    float* rows = x + (b * T + P) * H;
    if (table.dtype() == DType::F32) {
      kernels::embedding_forward(n, vocab, H, row_ids, table.data_as<float>(), rows);
      continue;
    }
    for (int64_t t = 0; t < n; ++t)  // a bf16 table: check the ids, then convert the rows looked up
      PEFT_CHECK(row_ids[t] >= 0 && row_ids[t] < vocab, ErrorCode::Range,
                 "Expected token ids in [0, " + std::to_string(vocab) + ") but ids[" + std::to_string(b) + "][" +
                     std::to_string(t) + "] is " + std::to_string(row_ids[t]));
    for (int64_t t = 0; t < n; ++t)
      kernels::convert(rows + t * H, DType::F32, table.data_as<uint16_t>() + row_ids[t] * H, DType::BF16, H);
  }
  for (const auto& [name, w] : lora) {
    if (w.merged) continue;
    for (const nn::RowRange& r : nn::adapter_rows(sel, name, B * T))
      for (int64_t row = r.first; row < r.second; ++row) {
        const int64_t b = row / T, t = row % T;
        if (t >= P) nn::embedding_lora_forward(w, 1, ids.data_as<int32_t>() + b * n + (t - P), x + row * H);
      }
  }
}

void embed_tokens_backward(nn::Param& table, nn::Param* prompt, const std::map<std::string, nn::EmbeddingLora>& lora,
                           const nn::AdapterSelection& sel, const Tensor& ids, int64_t B, int64_t T, int64_t H,
                           const float* dx) {
  const int64_t P = prompt ? prompt->value->dim(0) : 0, n = T - P;
  if (prompt)
    if (float* g = prompt->grad_data())
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < P * H; ++i) g[i] += dx[b * T * H + i];
  for (const auto& [name, w] : lora) {
    if (w.merged) continue;
    for (const nn::RowRange& r : nn::adapter_rows(sel, name, B * T))
      for (int64_t row = r.first; row < r.second; ++row) {
        const int64_t b = row / T, t = row % T;
        if (t >= P) nn::embedding_lora_backward(w, 1, ids.data_as<int32_t>() + b * n + (t - P), dx + row * H);
      }
  }
  if (float* g = table.grad_data())
    for (int64_t b = 0; b < B; ++b)
      kernels::embedding_backward(n, table.value->dim(0), H, dx + (b * T + P) * H, ids.data_as<int32_t>() + b * n, g, true);
}

void join_prefix(const nn::Param& prefix, int64_t layer, int which, int64_t layers, int64_t kv_dim, int64_t B,
                 int64_t T, const float* tokens, float* all) {
  const int64_t V = prefix.value->dim(0), S = V + T, stride = layers * 2 * kv_dim;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < V; ++t)
      std::memcpy(all + (b * S + t) * kv_dim, prefix.data() + t * stride + (2 * layer + which) * kv_dim,
                  sizeof(float) * kv_dim);
    if (T > 0) std::memcpy(all + (b * S + V) * kv_dim, tokens + b * T * kv_dim, sizeof(float) * T * kv_dim);
  }
}

void split_prefix_grad(nn::Param& prefix, int64_t layer, int which, int64_t layers, int64_t kv_dim, int64_t B, int64_t T,
                       const float* d_all, float* d_tokens) {
  const int64_t V = prefix.value->dim(0), S = V + T, stride = layers * 2 * kv_dim;
  float* g = prefix.grad_data();
  for (int64_t b = 0; b < B; ++b) {
    std::memcpy(d_tokens + b * T * kv_dim, d_all + (b * S + V) * kv_dim, sizeof(float) * T * kv_dim);
    if (!g) continue;
    for (int64_t t = 0; t < V; ++t) {
      float* row = g + t * stride + (2 * layer + which) * kv_dim;
      const float* src = d_all + (b * S + t) * kv_dim;
      for (int64_t i = 0; i < kv_dim; ++i) row[i] += src[i];
    }
  }
}

}  // namespace peft::model
