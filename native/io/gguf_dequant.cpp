#include "io/gguf_dequant.h"

#include <cstring>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace peft::io {

namespace {

constexpr int64_t kBlocksPerTask = 1024;  // 32K elements: enough work to be worth a thread

// The f16 scale at the start of a block (unaligned in the file: blocks are 34 or 18 bytes).
inline float block_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return f16_to_f32(h);
}

}  // namespace

void dequantize_q8_0(float* out, const uint8_t* blocks, int64_t n) {
  constexpr int64_t kBytes = 2 + kGgmlBlock;
  parallel_for(n / kGgmlBlock, kBlocksPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const uint8_t* block = blocks + b * kBytes;
      const float d = block_scale(block);
      const int8_t* q = reinterpret_cast<const int8_t*>(block + 2);
      float* y = out + b * kGgmlBlock;
      for (int j = 0; j < kGgmlBlock; ++j) y[j] = d * static_cast<float>(q[j]);
    }
  });
}

void dequantize_q4_0(float* out, const uint8_t* blocks, int64_t n) {
  constexpr int64_t kHalf = kGgmlBlock / 2;
  constexpr int64_t kBytes = 2 + kHalf;
  parallel_for(n / kGgmlBlock, kBlocksPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const uint8_t* block = blocks + b * kBytes;
      const float d = block_scale(block);
      const uint8_t* qs = block + 2;
      float* y = out + b * kGgmlBlock;
      for (int j = 0; j < kHalf; ++j) {
        y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
        y[j + kHalf] = d * static_cast<float>((qs[j] >> 4) - 8);
      }
    }
  });
}

}  // namespace peft::io
