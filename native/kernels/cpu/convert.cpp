// Dtype conversion through f32: exact for every widening, round-to-nearest-even for bf16/f16,
// truncation with saturation for integers (NaN becomes 0).
#include "kernels/convert.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/thread_pool.h"

namespace peft::kernels {

namespace {

float load_as_f32(const void* src, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(src)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(src)[i]);
    case DType::U8: return static_cast<float>(static_cast<const uint8_t*>(src)[i]);
  }
  return 0.0f;
}

template <typename Int>
Int saturate(float f) {
  if (std::isnan(f)) return 0;
  const double lo = static_cast<double>(std::numeric_limits<Int>::min());
  const double hi = static_cast<double>(std::numeric_limits<Int>::max());
  const double t = std::trunc(static_cast<double>(f));
  return static_cast<Int>(t < lo ? lo : (t > hi ? hi : t));
}

void store_from_f32(void* dst, DType dtype, int64_t i, float f) {
  switch (dtype) {
    case DType::F32: static_cast<float*>(dst)[i] = f; break;
    case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(f); break;
    case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(f); break;
    case DType::I32: static_cast<int32_t*>(dst)[i] = saturate<int32_t>(f); break;
    case DType::U8: static_cast<uint8_t*>(dst)[i] = saturate<uint8_t>(f); break;
  }
}

}  // namespace

void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) {
  if (n <= 0) return;
  if (dst_dtype == src_dtype) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(dst_dtype));
    return;
  }
  if (dst_dtype == DType::I32 && src_dtype == DType::U8) {  // exact without a float detour
    for (int64_t i = 0; i < n; ++i) static_cast<int32_t*>(dst)[i] = static_cast<const uint8_t*>(src)[i];
    return;
  }
  parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) store_from_f32(dst, dst_dtype, i, load_as_f32(src, src_dtype, i));
  });
}

}  // namespace peft::kernels
