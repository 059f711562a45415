// Pieces every decoder architecture shares: next-token targets, the token embedding lookup with
// prompt-tuning virtual tokens and LoRA on the embeddings, and learned position embeddings.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/adapter_selection.h"
#include "nn/embedding_lora.h"
#include "nn/param.h"
#include "kernels/backend.h"

namespace peft::model {

// labels: [B, T] i32 → targets [B · T]: position t predicts labels[t + 1]; the last predicts nothing (-100).
std::vector<int32_t> next_token_targets(const Tensor& labels, int64_t B, int64_t T);

// x: [B · T, H] (T = P + tokens): the P virtual tokens (prompt [P, H] or null), then the table's rows
// for ids [B, T - P] (table [vocab, H] f32 or bf16), plus each selected embedding-LoRA adapter.
void embed_tokens(const kernels::Context& ctx, const Tensor& table, const nn::Param* prompt, const std::map<std::string, nn::EmbeddingLora>& lora,
                  const nn::AdapterSelection& sel, const Tensor& ids, int64_t B, int64_t T, int64_t H, float* x);
// dx: [B · T, H] gradient of x; adds into the prompt's, the LoRA adapters' and (when it trains) the table's gradients.
void embed_tokens_backward(const kernels::Context& ctx, nn::Param& table, nn::Param* prompt, const std::map<std::string, nn::EmbeddingLora>& lora,
                           const nn::AdapterSelection& sel, const Tensor& ids, int64_t B, int64_t T, int64_t H,
                           const float* dx);

// Learned positions: x [M, H] += table [positions, H] (f32 or bf16) rows at positions [M].
void add_position_embeddings(const kernels::Context& ctx, const Tensor& table, const int32_t* positions, int64_t M, int64_t H, float* x);
// dx: [M, H] → adds each row into the table's gradient at its position (when the table trains).
void position_embeddings_backward(const kernels::Context& ctx, nn::Param& table, const int32_t* positions, int64_t M, int64_t H, const float* dx);

}  // namespace peft::model
