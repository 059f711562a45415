#include "model/head_loss.h"

#include <algorithm>
#include <cstring>

#include "core/profile.h"
#include "core/tensor.h"
#include "kernels/activation.h"
#include "kernels/loss.h"

namespace peft::model {

int64_t head_block_rows(int64_t M, int64_t vocab) {
  const int64_t rows = std::max<int64_t>((int64_t{1} << 24) / std::max<int64_t>(vocab, 1), 16);
  return std::min<int64_t>(rows, std::max<int64_t>(M, 1));
}

int64_t logits_row_stride(int64_t vocab) {
  int64_t ld = (vocab + 15) / 16 * 16;  // whole 64-byte lines
  if (ld % 256 == 0) ld += 16;          // not a multiple of 1 KiB: consecutive rows land in different cache sets
  return ld;
}

double blocked_head_loss(const kernels::Context& ctx, const nn::Linear& head, const nn::AdapterSelection& sel, int64_t M, int64_t H, int64_t vocab,
                         const float* normed, const std::vector<int32_t>& targets, bool backward, float* d_normed,
                         float softcap) {
  // Only rows with a label go through the head: an ignored row's loss and gradient are 0 (the last
  // position of each sequence, padding, prompt tokens masked out of the loss, virtual tokens).
  std::vector<int64_t> kept;
  kept.reserve(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i)
    if (targets[static_cast<size_t>(i)] != -100) kept.push_back(i);
  const auto count = static_cast<int64_t>(kept.size());
  const bool every_row = count == M;
  if (backward && d_normed && !every_row) std::memset(d_normed, 0, sizeof(float) * static_cast<size_t>(M * H));
  if (count == 0) return 0.0;

  const int64_t rows = head_block_rows(count, vocab);
  // A dense head without adapters writes its logits at a padded row stride (Linear::forward_strided).
  const bool strided = head.lora().empty() && head.ia3().empty() && head.quant() == nullptr;
  const int64_t ld = strided ? logits_row_stride(vocab) : vocab;
  Tensor block = Tensor::uninitialized(DType::F32, {rows, ld});
  float* logits = block.data_as<float>();
  // With a soft-cap the gradient goes to a second block: its backward needs the capped logits.
  Tensor grad_block = softcap > 0 && backward ? Tensor::uninitialized(DType::F32, {rows, ld}) : Tensor::uninitialized(DType::F32, {0});
  float* grad = softcap > 0 && backward ? grad_block.data_as<float>() : logits;
  std::vector<float> row_loss(static_cast<size_t>(rows));
  std::vector<int32_t> block_targets(static_cast<size_t>(rows));
  // The kept rows of normed and of d_normed, gathered per block when some rows are left out.
  std::vector<float> x_kept, dx_kept;
  if (!every_row) {
    x_kept.resize(static_cast<size_t>(rows * H));
    if (backward && d_normed) dx_kept.resize(static_cast<size_t>(rows * H));
  }
  const nn::LinearCache no_cache;  // a head without adapters needs only its input, passed directly
  double loss_sum = 0;
  for (int64_t r0 = 0; r0 < count; r0 += rows) {
    const int64_t n = std::min(rows, count - r0);
    const float* x = normed + r0 * H;
    float* dx = d_normed ? d_normed + r0 * H : nullptr;
    for (int64_t i = 0; i < n; ++i) block_targets[static_cast<size_t>(i)] = targets[static_cast<size_t>(kept[static_cast<size_t>(r0 + i)])];
    if (!every_row) {
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(x_kept.data() + i * H, normed + kept[static_cast<size_t>(r0 + i)] * H, sizeof(float) * static_cast<size_t>(H));
      x = x_kept.data();
      dx = dx_kept.empty() ? nullptr : dx_kept.data();
    }
    {
      PEFT_PROFILE_SCOPE(Head);
      if (strided)
        head.forward_strided(ctx, n, x, logits, ld);
      else
        head.forward(ctx, sel, n, x, logits, nullptr);
      if (softcap > 0) ctx.softcap_forward(n, vocab, ld, softcap, logits);
    }
    {
      PEFT_PROFILE_SCOPE(Loss);
      // Normalized by the whole batch's count, so the blocks' gradients add up to the mean's.
      loss_sum += ctx.cross_entropy(n, vocab, logits, block_targets.data(), -100, static_cast<double>(count),
                                         row_loss.data(), backward ? grad : nullptr, ld)
                      .loss_sum;
      if (backward && softcap > 0) ctx.softcap_backward(n, vocab, ld, softcap, logits, grad);
    }
    if (backward) {
      PEFT_PROFILE_SCOPE(Head);
      if (strided)
        head.backward_strided(ctx, n, grad, ld, x, dx, false);
      else
        head.backward(ctx, sel, n, grad, x, no_cache, dx, false);
      if (dx && !every_row)
        for (int64_t i = 0; i < n; ++i)
          std::memcpy(d_normed + kept[static_cast<size_t>(r0 + i)] * H, dx + i * H, sizeof(float) * static_cast<size_t>(H));
    }
  }
  return loss_sum / static_cast<double>(count);
}

}  // namespace peft::model
