#include "model/head_loss.h"

#include <algorithm>

#include "core/profile.h"
#include "core/tensor.h"
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

double blocked_head_loss(const nn::Linear& head, const nn::AdapterSelection& sel, int64_t M, int64_t H, int64_t vocab,
                         const float* normed, const std::vector<int32_t>& targets, bool backward, float* d_normed) {
  int64_t count = 0;
  for (int32_t t : targets) count += t != -100;
  const int64_t rows = head_block_rows(M, vocab);
  // A dense head without adapters writes its logits at a padded row stride (Linear::forward_strided).
  const bool strided = head.lora().empty() && head.ia3().empty() && head.quant() == nullptr;
  const int64_t ld = strided ? logits_row_stride(vocab) : vocab;
  Tensor block = Tensor::uninitialized(DType::F32, {std::min(rows, M), ld});
  float* logits = block.data_as<float>();
  std::vector<float> row_loss(static_cast<size_t>(std::min(rows, M)));
  const nn::LinearCache no_cache;  // a head without adapters needs only its input, passed directly
  double loss_sum = 0;
  for (int64_t r0 = 0; r0 < M; r0 += rows) {
    const int64_t n = std::min(rows, M - r0);
    const float* x = normed + r0 * H;
    {
      PEFT_PROFILE_SCOPE(Head);
      if (strided)
        head.forward_strided(n, x, logits, ld);
      else
        head.forward(sel, n, x, logits, nullptr);
    }
    {
      PEFT_PROFILE_SCOPE(Loss);
      // Normalized by the whole batch's count, so the blocks' gradients add up to the mean's.
      loss_sum += kernels::cross_entropy(n, vocab, logits, targets.data() + r0, -100, static_cast<double>(count),
                                         row_loss.data(), backward ? logits : nullptr, ld)
                      .loss_sum;
    }
    if (backward) {
      PEFT_PROFILE_SCOPE(Head);
      float* dx = d_normed ? d_normed + r0 * H : nullptr;
      if (strided)
        head.backward_strided(n, logits, ld, x, dx, false);
      else
        head.backward(sel, n, logits, x, no_cache, dx, false);
    }
  }
  return count ? loss_sum / static_cast<double>(count) : 0.0;
}

}  // namespace peft::model
