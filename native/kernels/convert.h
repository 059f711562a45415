// Element type conversions between tensors' buffers (bf16/f16 rounding: nearest, ties to even).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace peft::kernels {

// dst: [n] of dst_dtype; src: [n] of src_dtype. Integer targets truncate toward zero and saturate.
void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n);

}  // namespace peft::kernels
