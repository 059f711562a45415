// Softmax cross-entropy over a vocabulary, row by row, with PyTorch's ignore_index:
//   loss = (1 / normalizer) · Σ_{rows r with labels[r] != ignore_index} −log softmax(logits[r])[labels[r]]
// The gradient is written per row right after that row's loss, so logits can be turned into
// dlogits in place and a long batch can be processed one block of rows at a time (the normalizer
// is then the non-ignored row count of the whole batch, not of the block).
#pragma once
#include <cstdint>

namespace peft::kernels {

struct CrossEntropyResult {
  double loss_sum;  // Σ of the non-ignored rows' losses (not yet divided by the normalizer)
  int64_t count;    // non-ignored rows in this call
};

// Labels outside [0, vocab) other than ignore_index throw E_RANGE before anything is written.
// logits: [rows, vocab]; labels: [rows] i32. Outputs: row_loss: [rows] scratch (0 for ignored rows);
// dlogits: [rows, vocab] or null, may alias logits: (softmax − onehot) / normalizer for kept rows, 0 for
// ignored ones. normalizer <= 0 means "this call's count" (zero counts leave dlogits at 0).
// ld: the row stride of logits and dlogits (>= vocab), 0 for vocab.
CrossEntropyResult cross_entropy(int64_t rows, int64_t vocab, const float* logits, const int32_t* labels,
                                 int32_t ignore_index, double normalizer, float* row_loss, float* dlogits,
                                 int64_t ld = 0);

}  // namespace peft::kernels
