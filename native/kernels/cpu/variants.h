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

const GemmMicroKernel& gemm_kernel_scalar();
const GemmMicroKernel& gemm_kernel_avx2();
const GemmMicroKernel& gemm_kernel_avx512();
const GemmMicroKernel& gemm_kernel_avx512bf16();  // bf16 panels

const OptimSpans& optim_spans_scalar();
const OptimSpans& optim_spans_avx2();
const OptimSpans& optim_spans_avx512();

// The pieces for the active instruction set (kernels/isa.h).
const GemmMicroKernel& active_gemm_kernel_f32();
const GemmMicroKernel* active_gemm_kernel_bf16();  // null when the active ISA has no bf16 dot product
const OptimSpans& active_optim_spans();

}  // namespace peft::kernels::cpu
