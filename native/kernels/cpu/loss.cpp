// Softmax cross-entropy, one row per work item: max, Σ exp in f64, the row's loss, then (when asked)
// the row's gradient written straight away, so dlogits can overwrite logits.
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/variants.h"
#include "kernels/loss.h"

namespace peft::kernels {

CrossEntropyResult cross_entropy(int64_t rows, int64_t vocab, const float* logits, const int32_t* labels,
                                 int32_t ignore_index, double normalizer, float* row_loss, float* dlogits,
                                 int64_t ld) {
  if (ld == 0) ld = vocab;
  PEFT_CHECK(ld >= vocab, ErrorCode::Shape,
             "Expected a logits row stride of at least " + std::to_string(vocab) + " but received " + std::to_string(ld));
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t l = labels[r];
    if (l == ignore_index) continue;
    PEFT_CHECK(l >= 0 && l < vocab, ErrorCode::Range,
               "Expected labels in [0, " + std::to_string(vocab) + ") or the ignore index " +
                   std::to_string(ignore_index) + " for labels[" + std::to_string(r) + "] but received " +
                   std::to_string(l));
    ++count;
  }
  const double norm = normalizer > 0 ? normalizer : static_cast<double>(count);
  const cpu::LayerSpans& sp = cpu::active_layer_spans();
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = logits + r * ld;
      float* d = dlogits != nullptr ? dlogits + r * ld : nullptr;
      const int32_t l = labels[r];
      if (l == ignore_index || norm == 0) {
        row_loss[r] = 0;
        if (d != nullptr) for (int64_t i = 0; i < vocab; ++i) d[i] = 0;
        continue;
      }
      const float m = sp.max(x, vocab);
      const double sum = sp.sum_exp(x, m, vocab);
      const float target = x[l];  // read before d (which may be x) is written
      row_loss[r] = static_cast<float>(std::log(sum) + static_cast<double>(m) - target);
      if (d != nullptr) {
        sp.scaled_exp(x, m, static_cast<float>(1.0 / (sum * norm)), d, vocab);
        d[l] -= static_cast<float>(1.0 / norm);
      }
    }
  });
  double total = 0;  // fixed order, whatever the thread count
  for (int64_t r = 0; r < rows; ++r) total += row_loss[r];
  return {total, count};
}

}  // namespace peft::kernels
