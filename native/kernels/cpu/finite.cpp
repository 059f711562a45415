// NaN / infinity search: an element is non-finite when its exponent bits are all ones, whatever its
// mantissa (NaN) or sign. Comparing bits (not floats) keeps the loop branch-free, so the compiler
// vectorises it with the baseline instruction set; the scan is bound by memory bandwidth anyway.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/finite.h"

namespace peft::kernels {

namespace {

constexpr int64_t kChunk = 1 << 16;  // elements per pool task: large enough to hide the task cost

// Bits: the element's unsigned integer type; exponent: the mask of its exponent field.
template <typename Bits, Bits exponent>
uint32_t count_chunk(const unsigned char* bytes, int64_t begin, int64_t end) {
  uint32_t count = 0;
  for (int64_t i = begin; i < end; ++i) {
    Bits b;
    std::memcpy(&b, bytes + i * sizeof(Bits), sizeof(Bits));
    count += static_cast<uint32_t>((b & exponent) == exponent);
  }
  return count;
}

template <typename Bits, Bits exponent>
int64_t first_in(const unsigned char* bytes, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    Bits b;
    std::memcpy(&b, bytes + i * sizeof(Bits), sizeof(Bits));
    if ((b & exponent) == exponent) return i;
  }
  return -1;
}

template <typename Bits, Bits exponent>
NonFinite scan(const void* data, int64_t n) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<uint32_t> counts(static_cast<size_t>(chunks), 0);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      counts[c] = count_chunk<Bits, exponent>(bytes, c * kChunk, std::min(n, (c + 1) * kChunk));
  });
  NonFinite out{0, -1, std::numeric_limits<double>::quiet_NaN()};
  for (int64_t c = 0; c < chunks; ++c) {
    if (counts[c] == 0) continue;
    if (out.first < 0) out.first = first_in<Bits, exponent>(bytes, c * kChunk, std::min(n, (c + 1) * kChunk));
    out.count += counts[c];
  }
  if (out.first >= 0) {
    // All-ones exponent: a zero mantissa is an infinity (its sign is the top bit), anything else NaN.
    Bits b;
    std::memcpy(&b, bytes + out.first * sizeof(Bits), sizeof(Bits));
    const Bits sign = static_cast<Bits>(Bits(1) << (8 * sizeof(Bits) - 1));
    if ((b & static_cast<Bits>(~(sign | exponent))) == 0)
      out.value = (b & sign) ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  }
  return out;
}

}  // namespace

NonFinite find_nonfinite(const void* data, DType dtype, int64_t n) {
  const NonFinite none{0, -1, std::numeric_limits<double>::quiet_NaN()};
  if (n <= 0) return none;
  switch (dtype) {
    case DType::F32:
      return scan<uint32_t, 0x7f800000u>(data, n);
    case DType::BF16:
      return scan<uint16_t, 0x7f80u>(data, n);
    case DType::F16:
      return scan<uint16_t, 0x7c00u>(data, n);
    default:
      return none;
  }
}

}  // namespace peft::kernels
