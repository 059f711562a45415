// Dequantization of ggml's 32-element block formats into f32 (the layouts of ggml's block_q8_0 and
// block_q4_0). Internal to the GGUF reader; callers check that n is a multiple of 32.
#pragma once
#include <cstdint>

namespace peft::io {

constexpr int64_t kGgmlBlock = 32;

// out [n] f32 <- n / 32 blocks of {f16 d; int8 q[32]} (34 bytes): out = d * q.
void dequantize_q8_0(float* out, const uint8_t* blocks, int64_t n);
// out [n] f32 <- n / 32 blocks of {f16 d; uint8 qs[16]} (18 bytes): element j of a block is
// (qs[j] & 0xF) - 8, element j + 16 is (qs[j] >> 4) - 8, both times d.
void dequantize_q4_0(float* out, const uint8_t* blocks, int64_t n);

}  // namespace peft::io
