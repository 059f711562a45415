// Finds NaN and ±infinity in a buffer of floats (f32, bf16 or f16): how many there are and where the
// first one is. Used to refuse weights and data that would poison a forward pass or a training run.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace peft::kernels {

struct NonFinite {
  int64_t count;  // elements that are NaN or ±infinity
  int64_t first;  // index of the first of them, -1 when count is 0
  double value;   // the first one: NaN, +infinity or -infinity (NaN also when count is 0)
};

// data: [n] elements of `dtype`. Integer dtypes hold no NaN: {0, -1}. Runs on the thread pool.
NonFinite find_nonfinite(const void* data, DType dtype, int64_t n);

}  // namespace peft::kernels
