// Double quantization of the 4-bit block scales (bitsandbytes' compress_statistics) and the
// signed 8-bit dynamic map it uses. Both run on one value per block, so they stay scalar.
#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "core/error.h"
#include "kernels/nf4.h"

namespace peft::kernels {

namespace {

// torch.linspace(start, end, n) in float32 as torch's scalar CPU loop computes it: from the start
// for the first half, from the end for the second.
void linspace_f32(float start, float end, int n, float* out) {
  const float step = (end - start) / static_cast<float>(n - 1);
  const int half = n / 2;
  for (int i = 0; i < n; ++i) {
    out[i] = i < half ? start + step * static_cast<float>(i) : end - step * static_cast<float>(n - 1 - i);
  }
}

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent i = 0..6, the
// means of 2^i + 1 linspace(0.1, 1) boundaries scaled by 10^(i-6), with both signs; then 0 and 1,
// sorted. Every step in float32, as the PyTorch original.
std::array<float, 256> build_dynamic_map() {
  std::array<float, 256> map{};
  int count = 0;
  const double powers[7] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  for (int i = 0; i < 7; ++i) {
    const int n = (1 << i) + 1;
    float bounds[65];
    linspace_f32(0.1f, 1.0f, n, bounds);
    const float scale = static_cast<float>(powers[i]);
    for (int j = 0; j + 1 < n; ++j) {
      const float mean = (bounds[j] + bounds[j + 1]) / 2.0f;
      map[count++] = scale * mean;
      map[count++] = -scale * mean;
    }
  }
  map[count++] = 0.0f;
  map[count++] = 1.0f;
  std::sort(map.begin(), map.end());
  return map;
}

// The index of the nearest value of the sorted 256-value map, found as bitsandbytes' dQuantize
// does: a 7-step binary search over the odd indices lands on an even pivot p, then x is compared
// with the midpoint (f32) towards its neighbour. Ties go to the even index; NaN gives 0.
uint8_t quantize_dynamic(const float* code, float x) {
  int pivot = 127;
  for (int step = 64; step > 0; step >>= 1) pivot += x > code[pivot] ? step : -step;
  if (x > code[pivot]) {
    const int upper = pivot + 1;
    return static_cast<uint8_t>(x > (code[upper] + code[pivot]) * 0.5f ? upper : pivot);
  }
  if (pivot == 0) return 0;
  const int lower = pivot - 1;
  return static_cast<uint8_t>(x < (code[lower] + code[pivot]) * 0.5f ? lower : pivot);
}

}  // namespace

const float* dynamic_map_signed() {
  static const std::array<float, 256> map = build_dynamic_map();
  return map.data();
}

float quantize_absmax_nested(const float* absmax, int64_t n, int64_t nested_blocksize, const float* code,
                             uint8_t* codes, float* nested_absmax) {
  check_quant_blocksize(nested_blocksize, "nested_blocksize");
  if (n <= 0) return 0.0f;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += absmax[i];
  const float offset = static_cast<float>(sum / static_cast<double>(n));
  for (int64_t begin = 0; begin < n; begin += nested_blocksize) {
    const int64_t end = std::min(n, begin + nested_blocksize);
    float amax = 0.0f;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(absmax[i] - offset));
    nested_absmax[begin / nested_blocksize] = amax;
    const float inv = 1.0f / amax;  // Inf when every scale equals the mean: codes 0, as in bitsandbytes
    for (int64_t i = begin; i < end; ++i) codes[i] = quantize_dynamic(code, (absmax[i] - offset) * inv);
  }
  return offset;
}

void dequantize_absmax_nested(const Quant4Scales& s, int64_t n, float* absmax) {
  for (int64_t b = 0; b < n; ++b) absmax[b] = quant4_block_scale(s, b);
}

}  // namespace peft::kernels
