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

void embed_tokens(const kernels::Context& ctx, const Tensor& table, const nn::Param* prompt, const std::map<std::string, nn::EmbeddingLora>& lora,
                  const nn::AdapterSelection& sel, const Tensor& ids, int64_t B, int64_t T, int64_t H, float* x) {
  const int64_t P = prompt ? prompt->value->dim(0) : 0, vocab = table.dim(0), n = T - P;
  for (int64_t b = 0; b < B; ++b) {
    if (P) std::memcpy(x + b * T * H, prompt->data(), sizeof(float) * P * H);
    const int32_t* row_ids = ids.data_as<int32_t>() + b * n;
    float* rows = x + (b * T + P) * H;
    if (table.dtype() == DType::F32) {
      ctx.embedding_forward(n, vocab, H, row_ids, table.data_as<float>(), rows);
      continue;
    }
    for (int64_t t = 0; t < n; ++t)  // a bf16 table: check the ids, then convert the rows looked up
      PEFT_CHECK(row_ids[t] >= 0 && row_ids[t] < vocab, ErrorCode::Range,
                 "Expected token ids in [0, " + std::to_string(vocab) + ") but ids[" + std::to_string(b) + "][" +
                     std::to_string(t) + "] is " + std::to_string(row_ids[t]));
    for (int64_t t = 0; t < n; ++t)
      ctx.convert(rows + t * H, DType::F32, table.data_as<uint16_t>() + row_ids[t] * H, DType::BF16, H);
  }
  for (const auto& [name, w] : lora) {
    if (w.merged) continue;
    for (const nn::RowRange& r : nn::adapter_rows(sel, name, B * T))
      for (int64_t row = r.first; row < r.second; ++row) {
        const int64_t b = row / T, t = row % T;
        if (t >= P) nn::embedding_lora_forward(ctx, w, 1, ids.data_as<int32_t>() + b * n + (t - P), x + row * H);
      }
  }
}

void embed_tokens_backward(const kernels::Context& ctx, nn::Param& table, nn::Param* prompt, const std::map<std::string, nn::EmbeddingLora>& lora,
                           const nn::AdapterSelection& sel, const Tensor& ids, int64_t B, int64_t T, int64_t H,
                           const float* dx) {
  const int64_t P = prompt ? prompt->value->dim(0) : 0, n = T - P;
  if (prompt)
    if (float* g = prompt->grad_data())
      for (int64_t b = 0; b < B; ++b) ctx.add_values(P * H, dx + b * T * H, g);
  for (const auto& [name, w] : lora) {
    if (w.merged) continue;
    for (const nn::RowRange& r : nn::adapter_rows(sel, name, B * T))
      for (int64_t row = r.first; row < r.second; ++row) {
        const int64_t b = row / T, t = row % T;
        if (t >= P) nn::embedding_lora_backward(ctx, w, 1, ids.data_as<int32_t>() + b * n + (t - P), dx + row * H);
      }
  }
  if (float* g = table.grad_data())
    for (int64_t b = 0; b < B; ++b)
      ctx.embedding_backward(n, table.value->dim(0), H, dx + (b * T + P) * H, ids.data_as<int32_t>() + b * n, g, true);
}

void add_position_embeddings(const kernels::Context& ctx, const Tensor& table, const int32_t* positions, int64_t M, int64_t H, float* x) {
  std::vector<float> row(static_cast<size_t>(H));
  for (int64_t i = 0; i < M; ++i) {
    ctx.convert(row.data(), DType::F32,
                     static_cast<const char*>(table.data()) + positions[i] * H * dtype_size(table.dtype()), table.dtype(), H);
    ctx.add_values(H, row.data(), x + i * H);
  }
}

void position_embeddings_backward(const kernels::Context& ctx, nn::Param& table, const int32_t* positions, int64_t M, int64_t H, const float* dx) {
  float* g = table.grad_data();
  if (!g) return;
  for (int64_t i = 0; i < M; ++i) ctx.add_values(H, dx + i * H, g + positions[i] * H);
}

}  // namespace peft::model
