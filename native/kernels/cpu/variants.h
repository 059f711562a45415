// The per-instruction-set pieces of the CPU kernels. Each variant file (gemm_avx2.cpp, ...) is
// compiled with its own -m flags and defines only what is declared here: plain loops over raw
// pointers, no standard-library templates, so that no inline function compiled with wide
// instructions can be picked by the linker for code that runs on every CPU.
#pragma once
#include <cstdint>

namespace peft::kernels::cpu {

// A register-tile GEMM kernel and the cache blocking that suits it.
// Packed A sliver: k_steps groups of [mr][k_group] elements; packed B sliver: k_steps groups of
// [nr][k_group]. k_group is 1 for f32 panels, 2 for bf16 pairs (vdpbf16ps).
struct GemmMicroKernel {
  const char* name;
  int mr;
  int nr;
  int k_group;
  bool bf16_panels;  // panels hold bf16 (uint16) instead of f32
  int kc;            // K block (elements), a multiple of k_group
  int mc;            // M block, a multiple of mr
  int nc;            // N block, a multiple of nr
  // c[mr, nr] (row stride ldc) = alpha · a_panel·b_panel (+ c when accumulate).
  void (*tile)(int64_t k_steps, const void* a_panel, const void* b_panel, float* c, int64_t ldc, float alpha,
               bool accumulate);
  // Optional (nullptr: the generic loop): packs nr whole f32 rows stored K-contiguous (src[i * row_stride + k],
  // i < nr, k < kc) into one f32 B sliver out[k * nr + i], e.g. x·Wᵀ's weight rows, transposed in registers.
  void (*pack_b_rows)(const float* src, int64_t row_stride, int64_t kc, float* out) = nullptr;
  // The same for mr whole rows of A stored K-contiguous into an A sliver out[k * mr + i] (x in x·Aᵀ
  // with few output columns, such as LoRA's rank-r products, is mostly packing).
  void (*pack_a_rows)(const float* src, int64_t row_stride, int64_t kc, float* out) = nullptr;
  // Optional: the tile with mr rows of an f32 A read in place, element (i, k) at
  // a[i * row_stride + k * k_stride], for products whose A is used once (one B sliver wide).
  void (*tile_a_direct)(int64_t k_steps, const float* a, int64_t row_stride, int64_t k_stride, const void* b_panel,
                        float* c, int64_t ldc, float alpha, bool accumulate) = nullptr;
  // Optional: packs `slivers` whole A slivers from an f32 A stored with M contiguous (dW's dyᵀ):
  // element (i, k) at src[k * ld + i]; sliver s goes to out + s * sliver_stride as [kc][mr].
  void (*pack_a_outer)(const float* src, int64_t ld, int64_t slivers, int64_t kc, int64_t sliver_stride,
                       float* out) = nullptr;
};

// Elementwise loops of the fused optimizers; each handles any n (vector body plus scalar tail).
struct OptimSpans {
  const char* name;
  // AdamW on n elements. decay = 1 - lr*wd; step_size = lr / (1 - beta1^t);
  // inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t).
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, float decay, float beta1,
                float beta2, float step_size, float inv_sqrt_bc2, float eps);
  // SGD on n elements; buf may be null when momentum == 0.
  void (*sgd)(float* p, const float* g, float* buf, int64_t n, float lr, float momentum, float dampening,
              float weight_decay, bool nesterov, bool first_step);
  double (*sum_squares)(const float* x, int64_t n);
  void (*scale)(float* x, int64_t n, float factor);
};

// Row and elementwise loops of the transformer layers (norm.h, activation.h, loss.h); each handles
// any n. Only the hot ones have vector variants; LayerNorm, GELU and RoPE are scalar everywhere.
struct LayerSpans {
  const char* name;
  // y = (x · rstd) · w, HF's order; returns rstd = 1 / sqrt(Σx² / n + eps).
  float (*rmsnorm_row)(const float* x, const float* w, float eps, float* y, int64_t n);
  // dx = rstd · (w ⊙ dy) − x · rstd³ · mean(w ⊙ dy ⊙ x).
  void (*rmsnorm_row_backward)(const float* dy, const float* x, const float* w, float rstd, float* dx, int64_t n);
  // acc[i] += s · a[i] · b[i] (RMSNorm's dw, one row at a time).
  void (*scaled_product_add)(float* acc, const float* a, const float* b, float s, int64_t n);
  // h = silu(gate) · up.
  void (*swiglu)(const float* gate, const float* up, float* h, int64_t n);
  // d_gate = dh · up · σ(g)·(1 + g·(1 − σ(g))); d_up = dh · silu(g). Outputs may alias dh.
  void (*swiglu_backward)(const float* dh, const float* gate, const float* up, float* d_gate, float* d_up, int64_t n);
  float (*max)(const float* x, int64_t n);  // n >= 1
  // Σ exp(x[i] − shift), accumulated in f64.
  double (*sum_exp)(const float* x, float shift, int64_t n);
  // out[i] = exp(x[i] − shift) · scale (out may alias x).
  void (*scaled_exp)(const float* x, float shift, float scale, float* out, int64_t n);
};

// Loops of the 4-bit quantization (kernels/nf4.h). The vector variants take whole groups of 16
// (bytes, pairs or elements: n % 16 == 0); the driver runs any rest through the scalar loops.
struct Quant4Spans {
  const char* name;
  // out[2j] = table[packed[j] >> 4], out[2j+1] = table[packed[j] & 15] for j in [0, nbytes); table: [16] f32.
  void (*dequant)(const float* table, const uint8_t* packed, int64_t nbytes, float* out);
  // The largest |x[i]| as its bit pattern (sign cleared); >= 0x7f800000 means a NaN or Inf is present.
  uint32_t (*abs_max_bits)(const float* x, int64_t n);
  // packed[j] = code(x[2j]·inv) << 4 | code(x[2j+1]·inv) for j in [0, npairs).
  void (*quantize_nf4)(const float* x, int64_t npairs, float inv, uint8_t* packed);
  void (*quantize_fp4)(const float* x, int64_t npairs, float inv, uint8_t* packed);
};

// Matrix-vector loops of the small-M GEMM path (gemv_driver.cpp): a few rows of x against a
// weight streamed once from memory, with no packing. x: [m, ldx] f32 with m <= kGemvMaxRows;
// y: [m, ldy] f32. Every loop computes y[i, j] = alpha · Σ_p x[i, p] · op(W)[p, j]
// (+ y[i, j] when accumulate; y is not read otherwise) for j in [0, n), p in [0, k).
constexpr int kGemvMaxRows = 8;
struct GemvSpans {
  const char* name;
  // op(W)[p, j] = w[j · ldw + p]: each output is a dot product along a row of w (y = x·Wᵀ).
  void (*dot_rows_f32)(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw,
                       float* y, int64_t ldy, float alpha, bool accumulate);
  void (*dot_rows_bf16)(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                        float* y, int64_t ldy, float alpha, bool accumulate);
  // op(W)[p, j] = w[p · ldw + j]: the outputs are sums of rows of w scaled by x (dx = dy·W).
  // Each output is one chain of multiply-adds in p order, so any split of j gives the same bits.
  void (*axpy_rows_f32)(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw,
                        float* y, int64_t ldy, float alpha, bool accumulate);
  void (*axpy_rows_bf16)(int m, int64_t n, int64_t k, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                         float* y, int64_t ldy, float alpha, bool accumulate);
};

// Dequantization loops of ggml's block formats (kernels/ggml_quant.h): whole blocks in, f32 out,
// bit for bit what the scalar loops give. A null entry: that type runs the scalar loop.
// blocks: [nblocks · bytes per block] -> out: [nblocks · elements per block] f32.
using GgmlDequantLoop = void (*)(const uint8_t* blocks, int64_t nblocks, float* out);
struct GgmlDequantSpans {
  const char* name;
  GgmlDequantLoop q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs;
};
// The loop of `spans` for ggml type id `type` (a GgmlType), or null (none there, or no such type).
GgmlDequantLoop ggml_dequant_loop(const GgmlDequantSpans& spans, uint32_t type);

const GemmMicroKernel& gemm_kernel_scalar();
const GemmMicroKernel& gemm_kernel_avx2();
const GemmMicroKernel& gemm_kernel_avx512();
const GemmMicroKernel& gemm_kernel_avx512bf16();  // bf16 panels

const OptimSpans& optim_spans_scalar();
const OptimSpans& optim_spans_avx2();
const OptimSpans& optim_spans_avx512();

const LayerSpans& layer_spans_scalar();
const LayerSpans& layer_spans_avx2();

const Quant4Spans& quant4_spans_scalar();
const Quant4Spans& quant4_spans_avx2();
const Quant4Spans& quant4_spans_avx512();

const GemvSpans& gemv_spans_scalar();
const GemvSpans& gemv_spans_avx2();
const GemvSpans& gemv_spans_avx512();

const GgmlDequantSpans& ggml_dequant_spans_scalar();  // every entry set
const GgmlDequantSpans& ggml_dequant_spans_avx2();
const GgmlDequantSpans& ggml_dequant_spans_avx512();

// The pieces for the active instruction set (kernels/isa.h).
const GemmMicroKernel& active_gemm_kernel_f32();
const GemmMicroKernel* active_gemm_kernel_bf16();  // null when the active ISA has no bf16 dot product
const OptimSpans& active_optim_spans();
const LayerSpans& active_layer_spans();  // AVX-512 CPUs use the AVX2 loops
const Quant4Spans& active_quant4_spans();
const GemvSpans& active_gemv_spans();
const GgmlDequantSpans& active_ggml_dequant_spans();

}  // namespace peft::kernels::cpu
