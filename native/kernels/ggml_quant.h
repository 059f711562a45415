// ggml's block quantization formats (the layouts of ggml-common.h, as GGUF files store them):
// dequantization to f32, llama.cpp's reference quantizers (quantize_row_*_ref), and products with a
// quantized weight that dequantize it a panel at a time, as the 4-bit products of nf4.h do.
//
// A quantized matrix [rows, cols] is row-major: each row is cols / block elements' worth of blocks,
// row r starting at byte r · ggml_row_bytes(type, cols). Rows never share a block, so permuting rows
// or slicing a row range is a byte operation.
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "kernels/gemm.h"

namespace peft::kernels {

// ggml type ids (ggml.h's enum ggml_type) of the block formats with kernels here.
enum class GgmlType : uint32_t {
  Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14,
  IQ4_NL = 20, IQ4_XS = 23,
};

constexpr int64_t kGgmlSuperBlock = 256;  // QK_K: elements per block of the K-quants and IQ4_XS

struct GgmlBlockFormat {
  GgmlType type;
  const char* name;   // "Q4_K", as ggml names it
  int64_t block;      // elements per block (32 or 256)
  int64_t bytes;      // bytes per block
  bool quantizer;     // ggml_quantize_row handles it
};

// The format of ggml type id `id`, or null when there are no kernels for it.
const GgmlBlockFormat* ggml_block_format(uint32_t id);
const GgmlBlockFormat& ggml_block_format(GgmlType type);
// The format named `name` ("Q4_K", case as ggml writes it), or null.
const GgmlBlockFormat* ggml_block_format_named(const char* name);
// Bytes of one row of n elements (n % block == 0; callers check).
int64_t ggml_row_bytes(GgmlType type, int64_t n);

// out: [n] f32 <- the n / block blocks at `blocks` (n % block == 0), exactly as ggml's
// dequantize_row_* computes them (f16 scales widened to f32, the products in the same order).
// The _scalar form is the reference; ggml_dequantize_row uses the active instruction set's loop
// where there is one, which must give the same bits.
void ggml_dequantize_row_scalar(GgmlType type, const uint8_t* blocks, int64_t n, float* out);
void ggml_dequantize_row(GgmlType type, const uint8_t* blocks, int64_t n, float* out);

// blocks <- x: [n] f32 (n % block == 0), bit for bit what llama-quantize writes without an importance
// matrix (ggml_quantize_chunk): the reference quantizer quantize_row_*_ref of every type but IQ4_NL,
// and quantize_iq4_nl for IQ4_NL.
// x must be finite (callers check; see ggml_quantize_rows). E_UNSUPPORTED for a type without one.
void ggml_quantize_row(GgmlType type, const float* x, int64_t n, uint8_t* blocks);

// The first of nblocks blocks whose f16 scales hold a NaN or an infinity, or -1. Finite scales make
// every dequantized value finite, so this is the NaN / Inf check of a quantized weight.
int64_t ggml_first_nonfinite_block(GgmlType type, const uint8_t* blocks, int64_t nblocks);

// A quantized [rows, cols] matrix as stored (see the top of this file).
struct GgmlQuantTensor {
  GgmlType type;
  const uint8_t* data;  // [rows · ggml_row_bytes(type, cols)] bytes
  int64_t rows;
  int64_t cols;
};

// x: [rows, cols] f32 -> out: [rows · ggml_row_bytes(type, cols)] bytes. Multithreaded over rows.
// E_RANGE naming the first NaN or Inf (out is then unspecified); E_SHAPE unless cols % block == 0.
void ggml_quantize_rows(GgmlType type, const float* x, int64_t rows, int64_t cols, uint8_t* out);
// out: [r1 - r0, cols] f32 = rows [r0, r1). Multithreaded.
void ggml_dequantize_rows(const GgmlQuantTensor& q, int64_t r0, int64_t r1, float* out);
// out: [rows, c1 - c0] f32 = columns [c0, c1); c0 and c1 are multiples of the block (or c1 = cols).
void ggml_dequantize_cols(const GgmlQuantTensor& q, int64_t c0, int64_t c1, float* out);

// Products with a quantized weight W [N, K] (a linear layer's [out, in]), dequantized a panel at a
// time into `workspace` (see quant4_matmul); `compute` F32 or BF16 as there.
int64_t ggml_matmul_workspace(const GgmlQuantTensor& w);
// y[M, N] = alpha · op(x)[M, K] · dequant(W)ᵀ (+ y when accumulate); y: row stride ldy.
void ggml_matmul(int64_t M, const MatrixRef& x, const GgmlQuantTensor& w, float* y, int64_t ldy, float alpha,
                 bool accumulate, float* workspace, DType compute = DType::F32);
// dx[M, K] = alpha · dy[M, N] · dequant(W) (+ dx when accumulate); dy: [M, N] f32 row-major.
void ggml_matmul_dx(int64_t M, const float* dy, const GgmlQuantTensor& w, float* dx, float alpha, bool accumulate,
                    float* workspace, DType compute = DType::F32);

}  // namespace peft::kernels
