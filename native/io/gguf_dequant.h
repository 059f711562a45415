// Dequantization of a GGUF tensor stored in one of ggml's block formats into f32, on the thread
// pool, through the kernels' scalar reference (kernels/ggml_quant.h): the reader's path for tensors
// that are needed dense (embeddings, norms); the linear layers keep their blocks.
#pragma once
#include <cstdint>

#include "kernels/ggml_quant.h"

namespace peft::io {

// out: [n] f32 <- the n / block blocks of `type` at `blocks` (n % block == 0; the reader checks).
void dequantize_blocks(kernels::GgmlType type, const uint8_t* blocks, int64_t n, float* out);

}  // namespace peft::io
