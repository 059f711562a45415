// 4-bit quantize / dequantize: block bookkeeping, dtype conversion, the NaN/Inf check and threading
// around the instruction-set loops (variants.h), whose vector bodies take groups of 16.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/convert.h"
#include "kernels/cpu/variants.h"
#include "kernels/nf4.h"

namespace peft::kernels {

namespace {

constexpr int64_t kChunkElements = 1 << 15;  // elements per parallel work item
constexpr uint32_t kInfBits = 0x7f800000u;   // |x| bits at or above this: Inf or NaN

// bitsandbytes' get_4bit_type tables; FP4 is its value list divided by 12 in float32.
constexpr float kNf4Code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};
constexpr float kFp4Code[16] = {
    0.0f,          0.0625f / 12.0f,  8.0f / 12.0f,  12.0f / 12.0f,  4.0f / 12.0f,  6.0f / 12.0f,
    2.0f / 12.0f,  3.0f / 12.0f,     -0.0f,         -0.0625f / 12.0f, -8.0f / 12.0f, -12.0f / 12.0f,
    -4.0f / 12.0f, -6.0f / 12.0f,    -2.0f / 12.0f, -3.0f / 12.0f,
};

using QuantizePairs = void (*)(const float*, int64_t, float, uint8_t*);

// Pairs [0, npairs) of x: whole groups of 16 through the active loop, the rest through the scalar one.
void quantize_pairs(QuantizePairs fast, QuantizePairs scalar, const float* x, int64_t npairs, float inv,
                    uint8_t* packed) {
  const int64_t vec = npairs & ~int64_t{15};
  if (vec > 0) fast(x, vec, inv, packed);
  if (npairs > vec) scalar(x + 2 * vec, npairs - vec, inv, packed + vec);
}

uint32_t abs_max_bits(const cpu::Quant4Spans& fast, const float* x, int64_t n) {
  const int64_t vec = n & ~int64_t{15};
  const uint32_t a = vec > 0 ? fast.abs_max_bits(x, vec) : 0;
  const uint32_t b = cpu::quant4_spans_scalar().abs_max_bits(x + vec, n - vec);
  return std::max(a, b);
}

float element_as_f32(const void* x, DType dtype, int64_t i) {
  float v;
  convert(&v, DType::F32, static_cast<const char*>(x) + i * static_cast<int64_t>(dtype_size(dtype)), dtype, 1);
  return v;
}

[[noreturn]] void throw_not_finite(const void* x, DType dtype, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = element_as_f32(x, dtype, i);
    if (!std::isfinite(v)) {
      throw Error(ErrorCode::Range, std::string("Expected finite values for the tensor to quantize but received ") +
                                        (std::isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity") +
                                        " at index " + std::to_string(i) + " (of the flattened tensor)");
    }
  }
  throw Error(ErrorCode::Internal, "A non-finite value was reported but not found");
}

// Elements [begin, end) of block `block`, all sharing one scale.
void dequantize_segment(const cpu::Quant4Spans& fast, const Quant4Tensor& q, int64_t block, int64_t begin,
                        int64_t end, float* out) {
  float table[16];
  const float scale = quant4_block_scale(q.scales, block);
  for (int i = 0; i < 16; ++i) table[i] = q.code[i] * scale;
  int64_t i = begin;
  if (i & 1) {  // starts on a low nibble
    *out++ = table[q.packed[i / 2] & 15];
    ++i;
  }
  const int64_t nbytes = (end - i) / 2;
  const int64_t vec = nbytes & ~int64_t{15};
  if (vec > 0) fast.dequant(table, q.packed + i / 2, vec, out);
  cpu::quant4_spans_scalar().dequant(table, q.packed + i / 2 + vec, nbytes - vec, out + 2 * vec);
  i += 2 * nbytes;
  if (i < end) out[2 * nbytes] = table[q.packed[i / 2] >> 4];  // ends on a high nibble
}

}  // namespace

const float* quant4_code(Quant4Type type) { return type == Quant4Type::NF4 ? kNf4Code : kFp4Code; }

void check_quant_blocksize(int64_t blocksize, const char* what) {
  const bool power_of_two = blocksize > 0 && (blocksize & (blocksize - 1)) == 0;
  PEFT_CHECK(power_of_two && blocksize >= kQuant4MinBlock && blocksize <= kQuant4MaxBlock, ErrorCode::Range,
             std::string("Expected a power of two in [32, 4096] for ") + what + " but received " +
                 std::to_string(blocksize));
}

int64_t quant_blocks(int64_t n, int64_t blocksize) { return (n + blocksize - 1) / blocksize; }

float quant4_block_scale(const Quant4Scales& s, int64_t block) {
  if (s.codes == nullptr) return s.absmax[block];
  // Two roundings, as bitsandbytes: the dequantized value, then + offset (common code: no FMA).
  const float dequantized = s.nested_code[s.codes[block]] * s.nested_absmax[block / s.nested_blocksize];
  return dequantized + s.offset;
}

void quantize4(Quant4Type type, int64_t blocksize, const void* x, DType x_dtype, int64_t n, uint8_t* packed,
               float* absmax) {
  check_quant_blocksize(blocksize, "blocksize");
  PEFT_CHECK(x_dtype == DType::F32 || x_dtype == DType::BF16 || x_dtype == DType::F16, ErrorCode::DType,
             std::string("Expected dtype f32, bf16 or f16 for the tensor to quantize but received ") +
                 dtype_name(x_dtype));
  if (n <= 0) return;
  const cpu::Quant4Spans& fast = cpu::active_quant4_spans();
  const cpu::Quant4Spans& scalar = cpu::quant4_spans_scalar();
  const QuantizePairs fast_q = type == Quant4Type::NF4 ? fast.quantize_nf4 : fast.quantize_fp4;
  const QuantizePairs scalar_q = type == Quant4Type::NF4 ? scalar.quantize_nf4 : scalar.quantize_fp4;
  const int64_t blocks = quant_blocks(n, blocksize);
  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};

  parallel_for(blocks, std::max<int64_t>(1, kChunkElements / blocksize), [&](int64_t b0, int64_t b1) {
    float converted[kQuant4MaxBlock];  // one block of a bf16 / f16 input as f32
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * blocksize;
      const int64_t len = std::min(blocksize, n - begin);
      const float* xb = static_cast<const float*>(x) + begin;
      if (x_dtype != DType::F32) {
        convert(converted, DType::F32, static_cast<const uint16_t*>(x) + begin, x_dtype, len);
        xb = converted;
      }
      const uint32_t bits = abs_max_bits(fast, xb, len);
      if (bits >= kInfBits) {
        int64_t seen = first_bad.load();
        while (begin < seen && !first_bad.compare_exchange_weak(seen, begin)) {
        }
        continue;
      }
      float amax;
      std::memcpy(&amax, &bits, 4);
      absmax[b] = amax;
      // 1/0 = Inf for an all-zero block: 0·Inf is NaN, which every code search sends to code 0,
      // exactly what bitsandbytes stores for such blocks.
      const float inv = 1.0f / amax;
      uint8_t* out = packed + begin / 2;
      quantize_pairs(fast_q, scalar_q, xb, len / 2, inv, out);
      if (len & 1) {  // odd length: the last byte pairs the final element with a 0
        const float last[2] = {xb[len - 1], 0.0f};
        scalar_q(last, 1, inv, out + len / 2);
      }
    }
  });
  const int64_t bad = first_bad.load();
  if (bad != std::numeric_limits<int64_t>::max()) throw_not_finite(x, x_dtype, bad, std::min(n, bad + blocksize));
}

void dequantize4(const Quant4Tensor& q, int64_t begin, int64_t end, float* out) {
  PEFT_CHECK(begin >= 0 && begin <= end && end <= q.numel, ErrorCode::Internal,
             "dequantize4: range [" + std::to_string(begin) + ", " + std::to_string(end) + ") outside a tensor of " +
                 std::to_string(q.numel) + " elements");
  if (begin == end) return;
  const cpu::Quant4Spans& fast = cpu::active_quant4_spans();
  const int64_t first_block = begin / q.blocksize;
  const int64_t blocks = quant_blocks(end, q.blocksize) - first_block;
  parallel_for(blocks, std::max<int64_t>(1, kChunkElements / q.blocksize), [&](int64_t b0, int64_t b1) {
    for (int64_t b = first_block + b0; b < first_block + b1; ++b) {
      const int64_t lo = std::max(begin, b * q.blocksize);
      const int64_t hi = std::min(end, (b + 1) * q.blocksize);
      dequantize_segment(fast, q, b, lo, hi, out + (lo - begin));
    }
  });
}

void dequantize4_rows(const Quant4Tensor& q, int64_t cols, int64_t r0, int64_t r1, float* out) {
  dequantize4(q, r0 * cols, r1 * cols, out);
}

void dequantize4_cols(const Quant4Tensor& q, int64_t rows, int64_t cols, int64_t c0, int64_t c1, float* out) {
  PEFT_CHECK(rows >= 0 && cols >= 0 && 0 <= c0 && c0 <= c1 && c1 <= cols && rows * cols == q.numel, ErrorCode::Internal,
             "dequantize4_cols: columns [" + std::to_string(c0) + ", " + std::to_string(c1) + ") outside a [" +
                 std::to_string(rows) + ", " + std::to_string(cols) + "] tensor of " + std::to_string(q.numel) + " elements");
  const int64_t width = c1 - c0;
  if (width == 0 || rows == 0) return;
  const cpu::Quant4Spans& fast = cpu::active_quant4_spans();
  parallel_for(rows, std::max<int64_t>(1, kChunkElements / width), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t begin = r * cols + c0, end = r * cols + c1;  // one row's segment, across its blocks
      for (int64_t b = begin / q.blocksize; b * q.blocksize < end; ++b) {
        const int64_t lo = std::max(begin, b * q.blocksize), hi = std::min(end, (b + 1) * q.blocksize);
        dequantize_segment(fast, q, b, lo, hi, out + r * width + (lo - begin));
      }
    }
  });
}

}  // namespace peft::kernels
