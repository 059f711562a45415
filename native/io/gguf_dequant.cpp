#include "io/gguf_dequant.h"

#include <algorithm>

#include "core/thread_pool.h"

namespace peft::io {

void dequantize_blocks(kernels::GgmlType type, const uint8_t* blocks, int64_t n, float* out) {
  const kernels::GgmlBlockFormat& f = kernels::ggml_block_format(type);
  const int64_t per_task = std::max<int64_t>(1, (int64_t{1} << 15) / f.block);  // 32K elements a task
  parallel_for(n / f.block, per_task, [&](int64_t b0, int64_t b1) {
    kernels::ggml_dequantize_row_scalar(type, blocks + b0 * f.bytes, (b1 - b0) * f.block, out + b0 * f.block);
  });
}

}  // namespace peft::io
