// Embedding gather and scatter-add. The backward splits the columns over the pool, so each thread
// owns a column range of every row and repeated ids need no locks.
#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/embedding.h"

namespace peft::kernels {

namespace {
constexpr int64_t kColumnBlock = 256;

void check_ids(int64_t n, int64_t vocab, const int32_t* ids) {
  for (int64_t i = 0; i < n; ++i) {
    PEFT_CHECK(ids[i] >= 0 && ids[i] < vocab, ErrorCode::Range,
               "Expected token ids in [0, " + std::to_string(vocab) + ") (the vocabulary size is " +
                   std::to_string(vocab) + ") for ids[" + std::to_string(i) + "] but received " +
                   std::to_string(ids[i]));
  }
}
}  // namespace

void embedding_forward(int64_t n, int64_t vocab, int64_t dim, const int32_t* ids, const float* table, float* out) {
  check_ids(n, vocab, ids);
  parallel_for(n, std::max<int64_t>(1, 4096 / std::max<int64_t>(dim, 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) std::memcpy(out + i * dim, table + ids[i] * dim, sizeof(float) * dim);
  });
}

void embedding_backward(int64_t n, int64_t vocab, int64_t dim, const float* dout, const int32_t* ids,
                        float* grad_table, bool accumulate) {
  check_ids(n, vocab, ids);
  if (!accumulate) std::memset(grad_table, 0, sizeof(float) * vocab * dim);
  const int64_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    const int64_t c0 = b0 * kColumnBlock, c1 = std::min(dim, b1 * kColumnBlock);
    for (int64_t i = 0; i < n; ++i) {
      float* g = grad_table + ids[i] * dim;
      const float* d = dout + i * dim;
      for (int64_t j = c0; j < c1; ++j) g[j] += d[j];
    }
  });
}

}  // namespace peft::kernels
