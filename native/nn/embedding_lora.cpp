#include "nn/embedding_lora.h"

#include <vector>

namespace peft::nn {

void embedding_lora_forward(const kernels::Context& ctx, const EmbeddingLora& w, int64_t rows, const int32_t* ids, float* y) {
  const int64_t r = w.a->value->dim(0), vocab = w.a->value->dim(1), hidden = w.b->value->dim(0);
  const float* a = w.a->data();
  const float* b = w.b->data();
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t id = ids[i];
    for (int64_t h = 0; h < hidden; ++h) {
      float sum = 0;
      for (int64_t j = 0; j < r; ++j) sum += b[h * r + j] * a[j * vocab + id];
      y[i * hidden + h] += w.scaling * sum;
    }
  }
}

void embedding_lora_backward(const kernels::Context& ctx, const EmbeddingLora& w, int64_t rows, const int32_t* ids, const float* dy) {
  const int64_t r = w.a->value->dim(0), vocab = w.a->value->dim(1), hidden = w.b->value->dim(0);
  const float* a = w.a->data();
  const float* b = w.b->data();
  float* ga = w.a->grad_data();
  float* gb = w.b->grad_data();
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t id = ids[i];
    const float* d = dy + i * hidden;
    for (int64_t j = 0; j < r; ++j) {
      float back = 0;  // (Bᵀ·dy)[j]
      for (int64_t h = 0; h < hidden; ++h) {
        back += b[h * r + j] * d[h];
        if (gb) gb[h * r + j] += w.scaling * d[h] * a[j * vocab + id];
      }
      if (ga) ga[j * vocab + id] += w.scaling * back;
    }
  }
}

}  // namespace peft::nn
