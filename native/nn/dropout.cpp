#include "nn/dropout.h"

#include "core/thread_pool.h"

namespace peft::nn {

namespace {

// splitmix64 finaliser: a well-mixed hash of a counter.
uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t dropout_stream(const std::string& module, const std::string& adapter) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over "module/adapter"
  for (char c : module + "/" + adapter) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

void dropout_rows(uint64_t seed, uint64_t stream, float p, int64_t row0, int64_t rows, int64_t cols, const float* x,
                  float* y) {
  const uint64_t key = mix(seed ^ mix(stream));
  // Keep when the top 24 bits, as a fraction, are at least p.
  const uint32_t threshold = static_cast<uint32_t>(static_cast<double>(p) * 16777216.0);
  const float keep_scale = 1.0f / (1.0f - p);
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t base = static_cast<uint64_t>(row0 + i) * static_cast<uint64_t>(cols);
      for (int64_t j = 0; j < cols; ++j) {
        const uint32_t u = static_cast<uint32_t>(mix(key + base + static_cast<uint64_t>(j)) >> 40);
        y[i * cols + j] = u >= threshold ? x[i * cols + j] * keep_scale : 0.0f;
      }
    }
  });
}

}  // namespace peft::nn
