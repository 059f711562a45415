// 4-bit blockwise quantization exactly as bitsandbytes stores it (NF4 and FP4), the double
// quantization of the block scales (compress_statistics), and the products of a 4-bit weight
// that dequantize it a panel at a time.
//
// Layout (bitsandbytes'): blocks of `blocksize` elements run over the row-major flattened tensor;
// element 2j sits in the high nibble of byte j and element 2j+1 in the low nibble; one f32 absmax
// per block. An element's code is the one whose interval (split at bitsandbytes' published
// midpoints between the sorted code values) holds x · (1 / absmax).
// Like bitsandbytes, a block whose absmax is 0 (all zeros) gets code 0 everywhere (its x · (1/0)
// is NaN), and the pad element of an odd length is a 0 quantized with the last block's scale.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/gemm.h"

namespace peft::kernels {

enum class Quant4Type : uint8_t { NF4, FP4 };

constexpr int64_t kQuant4MinBlock = 32;
constexpr int64_t kQuant4MaxBlock = 4096;
constexpr int64_t kQuant4DefaultBlock = 64;
constexpr int64_t kNestedDefaultBlock = 256;  // bitsandbytes' block for the double-quantized absmax

// bitsandbytes' 16-value code table (its quant_map) for type.
const float* quant4_code(Quant4Type type);
// bitsandbytes' signed 8-bit dynamic map, create_dynamic_map(signed=True): 256 sorted values,
// evaluated in float32 as torch's scalar linspace does.
const float* dynamic_map_signed();

// Throws E_RANGE unless blocksize is a power of two in [32, 4096]; `what` names the option.
void check_quant_blocksize(int64_t blocksize, const char* what);
int64_t quant_blocks(int64_t n, int64_t blocksize);  // ceil(n / blocksize)

// x: [n] f32, bf16 or f16; packed: [ceil(n/2)] u8; absmax: [ceil(n/blocksize)] f32.
// Throws E_RANGE naming the first index holding NaN or Inf (outputs are then unspecified).
void quantize4(Quant4Type type, int64_t blocksize, const void* x, DType x_dtype, int64_t n, uint8_t* packed,
               float* absmax);

// The per-block scales of a 4-bit tensor: plain f32, or double-quantized
// (absmax[b] = nested_code[codes[b]] · nested_absmax[b / nested_blocksize] + offset).
struct Quant4Scales {
  const float* absmax = nullptr;         // [blocks] f32, when not nested
  const uint8_t* codes = nullptr;        // [blocks] u8, when nested
  const float* nested_absmax = nullptr;  // [ceil(blocks / nested_blocksize)] f32
  const float* nested_code = nullptr;    // [256] f32
  float offset = 0.0f;
  int64_t nested_blocksize = kNestedDefaultBlock;
};

// The scale of block `block`: s.absmax[block], or its double-quantized form (f32 product, then + offset).
float quant4_block_scale(const Quant4Scales& s, int64_t block);

// A 4-bit tensor as stored: numel elements of the flattened tensor.
struct Quant4Tensor {
  const uint8_t* packed;  // [ceil(numel / 2)] u8
  const float* code;      // [16] f32: the quant_map (the file's, when loaded)
  int64_t blocksize;
  int64_t numel;
  Quant4Scales scales;
};

// out: [end - begin] f32 = elements [begin, end) of the dequantized, flattened tensor. A row range
// [r0, r1) of a [rows, cols] weight is the element range [r0·cols, r1·cols). Multithreaded.
void dequantize4(const Quant4Tensor& q, int64_t begin, int64_t end, float* out);

// out: [r1 - r0, cols] f32 = rows [r0, r1) of a 4-bit [rows, cols] matrix (a tile for a product).
void dequantize4_rows(const Quant4Tensor& q, int64_t cols, int64_t r0, int64_t r1, float* out);
// out: [rows, c1 - c0] f32 = columns [c0, c1) of a 4-bit [rows, cols] matrix. Multithreaded over rows.
void dequantize4_cols(const Quant4Tensor& q, int64_t rows, int64_t cols, int64_t c0, int64_t c1, float* out);

// Double quantization (bitsandbytes' compress_statistics): offset = mean(absmax) (returned);
// absmax − offset is quantized in blocks of nested_blocksize with the sorted 256-value map
// `code` (nearest value, searched as bitsandbytes' kernel does).
// absmax: [n] f32; codes: [n] u8; nested_absmax: [ceil(n / nested_blocksize)] f32.
float quantize_absmax_nested(const float* absmax, int64_t n, int64_t nested_blocksize, const float* code,
                             uint8_t* codes, float* nested_absmax);
// absmax: [n] f32, the scales that s describes.
void dequantize_absmax_nested(const Quant4Scales& s, int64_t n, float* absmax);

// v: [n] f32, rounded in place to the nearest bf16 value (ties to even): what a product in
// bitsandbytes' bf16 compute dtype sees of a dequantized weight.
void round_to_bf16(float* v, int64_t n);

// Products with a 4-bit weight W: [N, K] (a linear layer's [out, in]) that dequantize W a panel of
// rows at a time into `workspace` (a panel of columns for the forward of a wide W, K > N, so that x
// is packed once), never the whole matrix. `compute` is the dtype the dequantized
// values take before the product: F32 (as they are) or BF16 (rounded, see round_to_bf16); the
// product always accumulates in f32.
// Floats of workspace that quant4_matmul / quant4_matmul_dx need for W of shape [N, K].
int64_t quant4_matmul_workspace(int64_t N, int64_t K);
// y[M, N] = alpha · op(x)[M, K] · dequant(W)ᵀ (+ y when accumulate); y: row stride ldy.
void quant4_matmul(int64_t M, int64_t N, int64_t K, const MatrixRef& x, const Quant4Tensor& w, float* y, int64_t ldy,
                   float alpha, bool accumulate, float* workspace, DType compute = DType::F32);
// dx[M, K] = alpha · dy[M, N] · dequant(W) (+ dx when accumulate); dy: [M, N] f32 row-major.
void quant4_matmul_dx(int64_t M, int64_t N, int64_t K, const float* dy, const Quant4Tensor& w, float* dx,
                      float alpha, bool accumulate, float* workspace, DType compute = DType::F32);

}  // namespace peft::kernels
