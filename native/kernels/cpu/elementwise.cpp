#include "kernels/elementwise.h"

#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"

namespace peft::kernels {

namespace {
constexpr int64_t kChunk = 1 << 16;  // values per work item: small tensors stay on one thread

template <typename Body>
void for_chunks(int64_t n, const Body& body) {
  parallel_for((n + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
}
}  // namespace

void scale_values(int64_t n, float factor, float* x) {
  for_chunks(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] *= factor;
  });
}

void copy_values(int64_t n, const float* src, float* dst) {
  for_chunks(n, [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, sizeof(float) * static_cast<size_t>(e - b)); });
}

}  // namespace peft::kernels
