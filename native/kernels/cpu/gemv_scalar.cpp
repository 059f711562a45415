// Scalar loops of the small-M GEMM path: the reference the vector variants are tested against.
// One output at a time, its products summed in K order.
#include "core/dtype.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

float weight_value(const float* w, int64_t i) { return w[i]; }
float weight_value(const uint16_t* w, int64_t i) { return bf16_to_f32(w[i]); }

// y = x·Wᵀ with w: [n, ldw]; x: [m, ldx]; y: [m, ldy].
template <typename T>
void dot_rows(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const T* w, int64_t ldw, float* y,
              int64_t ldy, float alpha, bool accumulate) {
  for (int i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (int64_t p = 0; p < k; ++p) sum += x[i * ldx + p] * weight_value(w, j * ldw + p);
      float* out = y + i * ldy + j;
      *out = alpha * sum + (accumulate ? *out : 0.0f);
    }
  }
}

// y = x·W with w: [k, ldw]; x: [m, ldx]; y: [m, ldy].
template <typename T>
void axpy_rows(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const T* w, int64_t ldw, float* y,
               int64_t ldy, float alpha, bool accumulate) {
  for (int i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (int64_t p = 0; p < k; ++p) sum += x[i * ldx + p] * weight_value(w, p * ldw + j);
      float* out = y + i * ldy + j;
      *out = alpha * sum + (accumulate ? *out : 0.0f);
    }
  }
}

const GemvSpans kSpans = {"scalar", dot_rows<float>, dot_rows<uint16_t>, axpy_rows<float>, axpy_rows<uint16_t>};
}  // namespace

const GemvSpans& gemv_spans_scalar() { return kSpans; }

}  // namespace peft::kernels::cpu
