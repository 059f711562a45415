// The output head and the cross-entropy of a training step, a block of rows at a time, so that the
// [rows, vocab] logits and their gradient never exist for the whole batch (at SmolLM's vocabulary and
// 2,048 tokens they would be 800 MB). Shared by the decoder architectures' train_loss.
#pragma once
#include <cstdint>
#include <vector>

#include "nn/adapter_selection.h"
#include "nn/linear.h"

namespace peft::model {

// Rows per block: 2^24 logits, at least 16 rows (GEMM-sized blocks for a huge vocabulary), at most M.
int64_t head_block_rows(int64_t M, int64_t vocab);

// The logits block's row stride: vocab rounded up to whole cache lines, never a multiple of 1 KiB.
int64_t logits_row_stride(int64_t vocab);

// Mean cross-entropy of head(normed) against targets (-100 ignored; 0 when every target is ignored).
// normed: [M, H] the final norm's output; targets: [M]. With `backward`, each block's logits become
// their gradient in place and go through the head's backward: the head's own gradients (when it
// trains) and, when d_normed is not null, d_normed [M, H] = ∂loss/∂normed. Rows whose target is
// ignored never reach the head (their d_normed rows are 0). The head must carry no adapters (they
// keep per-row state the whole-batch path handles). softcap > 0: the logits are soft-capped first
// (Gemma 2's final_logit_softcapping).
double blocked_head_loss(const kernels::Context& ctx, const nn::Linear& head, const nn::AdapterSelection& sel, int64_t M, int64_t H, int64_t vocab,
                         const float* normed, const std::vector<int32_t>& targets, bool backward, float* d_normed,
                         float softcap = 0);

}  // namespace peft::model
