// The backend seam. Modules and models reach every kernel through a Context: the op table of one
// backend (function pointers, as ggml's backends are reached) and the allocator for its device's
// memory, passed as the first argument of every forward and backward. The CPU backend's table
// points at the kernels in kernels/cpu/ (which pick their instruction-set variant themselves);
// a CUDA backend is a second table plus an allocator, with no change to nn/ or model/.
//
// Shapes are given on each op's kernel header (gemm.h, attention.h, norm.h, ...); every pointer is
// memory of the context's device. Host-side arithmetic that runs once per adapter change, not per
// step (merging, DoRA's weight norm, requantization), calls the kernels on host copies directly.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/allocator.h"
#include "core/tensor.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/ggml_quant.h"
#include "kernels/lora_batch.h"
#include "kernels/loss.h"
#include "kernels/nf4.h"
#include "kernels/rope.h"

namespace peft::kernels {

struct Context;

// One backend's ops. Each takes the context it was reached through, so a device backend can find
// its stream and scratch memory there.
struct Backend {
  const char* name;
  Allocator* allocator;

  // Products (gemm.h, lowrank.h, nf4.h).
  void (*gemm)(const Context&, int64_t M, int64_t N, int64_t K, const MatrixRef& a, const MatrixRef& b, float* c,
               int64_t ldc, float alpha, bool accumulate);
  void (*lora_branch_forward)(const Context&, int64_t m, int64_t n, int64_t k, int64_t r, const void* x, DType x_dtype,
                              const float* a, const float* b, float scale, float* xa, float* y, int64_t ldy,
                              bool accumulate_y);
  void (*lora_branch_backward)(const Context&, int64_t m, int64_t n, int64_t k, int64_t r, const float* dy,
                               const void* x, DType x_dtype, const float* xa, const float* a, const float* b,
                               float scale, float* g, float* da, float* db, float* dx, bool accumulate_dx);
  void (*lora_batch_forward)(const Context&, int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx,
                             const LoraAdapterRef* adapters, int64_t count, const LoraSegment* segments, int64_t nseg,
                             float* y, int64_t ldy);
  void (*dora_combine_forward)(const Context&, int64_t rows, int64_t n, const float* mag, const float* norm,
                               const float* base, const float* lora, float* y);
  void (*dora_combine_backward)(const Context&, int64_t rows, int64_t n, const float* mag, const float* norm,
                                const float* dy, const float* base, const float* lora, float* d_lora, float* d_base,
                                float* gm);
  void (*quant4_matmul)(const Context&, int64_t M, int64_t N, int64_t K, const MatrixRef& x, const Quant4Tensor& w,
                        float* y, int64_t ldy, float alpha, bool accumulate, DType compute);
  void (*quant4_matmul_dx)(const Context&, int64_t M, int64_t N, int64_t K, const float* dy, const Quant4Tensor& w,
                           float* dx, float alpha, bool accumulate, DType compute);
  void (*dequantize4_rows)(const Context&, const Quant4Tensor& q, int64_t cols, int64_t r0, int64_t r1, float* out);
  // ggml block formats (ggml_quant.h): W [N, K] = w.rows x w.cols.
  void (*ggml_matmul)(const Context&, int64_t M, const MatrixRef& x, const GgmlQuantTensor& w, float* y, int64_t ldy,
                      float alpha, bool accumulate, DType compute);
  void (*ggml_matmul_dx)(const Context&, int64_t M, const float* dy, const GgmlQuantTensor& w, float* dx, float alpha,
                         bool accumulate, DType compute);
  void (*ggml_dequantize_rows)(const Context&, const GgmlQuantTensor& q, int64_t r0, int64_t r1, float* out);

  // Layers (norm.h, rope.h, attention.h, activation.h, embedding.h, loss.h).
  void (*rmsnorm_forward)(const Context&, int64_t rows, int64_t dim, const float* x, const float* w, float eps, float* y,
                          float* rstd);
  void (*rmsnorm_backward)(const Context&, int64_t rows, int64_t dim, const float* dy, const float* x, const float* w,
                           const float* rstd, float* dx, float* dw, bool accumulate_dw);
  void (*layernorm_forward)(const Context&, int64_t rows, int64_t dim, const float* x, const float* w, const float* b,
                            float eps, float* y, float* mean, float* rstd);
  void (*layernorm_backward)(const Context&, int64_t rows, int64_t dim, const float* dy, const float* x,
                             const float* w, const float* mean, const float* rstd, float* dx, float* dw, float* db,
                             bool accumulate_dw);
  void (*rope_apply)(const Context&, const RopeShape& s, const float* x, const int32_t* positions,
                     const double* inv_freq, bool inverse, float* y);
  void (*attention_forward)(const Context&, const AttentionShape& s, const AttentionMask& mask, float scale,
                            const float* q, const float* k, const float* v, float* out, float* lse);
  void (*attention_backward)(const Context&, const AttentionShape& s, const AttentionMask& mask, float scale,
                             const float* q, const float* k, const float* v, const float* out, const float* dout,
                             const float* lse, float* dq, float* dk, float* dv);
  // The gated activations h = act(gate) · up and their backward; the plain ones y = act(x).
  void (*swiglu_forward)(const Context&, int64_t n, const float* gate, const float* up, float* h);
  void (*swiglu_backward)(const Context&, int64_t n, const float* dh, const float* gate, const float* up,
                          float* d_gate, float* d_up);
  void (*geglu_forward)(const Context&, int64_t n, const float* gate, const float* up, float* h);
  void (*geglu_backward)(const Context&, int64_t n, const float* dh, const float* gate, const float* up, float* d_gate,
                         float* d_up);
  void (*gelu_tanh_forward)(const Context&, int64_t n, const float* x, float* y);
  void (*gelu_tanh_backward)(const Context&, int64_t n, const float* dy, const float* x, float* dx);
  void (*gelu_erf_forward)(const Context&, int64_t n, const float* x, float* y);
  void (*gelu_erf_backward)(const Context&, int64_t n, const float* dy, const float* x, float* dx);
  void (*pointwise_forward)(const Context&, Pointwise a, int64_t n, const float* x, float* y);
  void (*pointwise_backward)(const Context&, Pointwise a, int64_t n, const float* dy, const float* x, float* dx);
  void (*softcap_forward)(const Context&, int64_t rows, int64_t cols, int64_t ld, float cap, float* x);
  void (*softcap_backward)(const Context&, int64_t rows, int64_t cols, int64_t ld, float cap, const float* y,
                           float* dy);
  void (*embedding_forward)(const Context&, int64_t n, int64_t vocab, int64_t dim, const int32_t* ids,
                            const float* table, float* out);
  void (*embedding_backward)(const Context&, int64_t n, int64_t vocab, int64_t dim, const float* dout,
                             const int32_t* ids, float* grad_table, bool accumulate);
  CrossEntropyResult (*cross_entropy)(const Context&, int64_t rows, int64_t vocab, const float* logits,
                                      const int32_t* labels, int32_t ignore_index, double normalizer, float* row_loss,
                                      float* dlogits, int64_t ld);

  // Mixture-of-experts routing (moe.h).
  void (*moe_route)(const Context&, int64_t m, int64_t E, int64_t K, bool normalize, float* scores, int32_t* chosen,
                    float* weights);
  void (*moe_route_backward)(const Context&, int64_t m, int64_t E, int64_t K, bool normalize, const float* probs,
                             const int32_t* chosen, const float* weights, const double* d_weight, float* d_scores);
  void (*gather_rows)(const Context&, int64_t n, int64_t H, const int64_t* rows, const float* src, float* dst);
  void (*scatter_add_rows)(const Context&, int64_t n, int64_t H, const int64_t* rows, const float* scale,
                           const float* src, float* dst);
  void (*gather_rows_scaled_dot)(const Context&, int64_t n, int64_t H, const int64_t* rows, const float* scale,
                                 const float* g, const float* y, float* out, double* dot);

  // Elementwise (convert.h, elementwise.h).
  void (*convert)(const Context&, void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n);
  void (*scale_values)(const Context&, int64_t n, float factor, float* x);
  void (*copy_values)(const Context&, int64_t n, const float* src, float* dst);
  void (*add_values)(const Context&, int64_t n, const float* src, float* dst);
  void (*copy_columns)(const Context&, int64_t m, int64_t width, int64_t src_width, int64_t offset, const float* src,
                       float* dst);
  void (*place_columns)(const Context&, int64_t m, int64_t width, int64_t dst_width, int64_t offset, const float* src,
                        float* dst);
  void (*add_row_vector)(const Context&, int64_t m, int64_t n, int64_t ldy, const float* b, float* y);
  void (*add_column_sums)(const Context&, int64_t m, int64_t n, int64_t ldx, const float* x, float* acc);
  void (*scale_columns)(const Context&, int64_t m, int64_t n, const float* scale, float* v);
  void (*add_column_dots)(const Context&, int64_t m, int64_t n, const float* u, const float* v, float* g);
};

// What every op call carries: the backend it runs on. Passed by const reference from the model
// down through each module's forward and backward; the forwarding members below keep call sites
// short (ctx.gemm(...)).
struct Context {
  const Backend* backend;

  Device device() const { return backend->allocator->device(); }
  Allocator& allocator() const { return *backend->allocator; }
  // A new contiguous tensor in this backend's memory: zeroed, or left undefined for outputs written in full.
  std::shared_ptr<Tensor> zeros(DType dtype, const Shape& shape) const;
  std::shared_ptr<Tensor> empty(DType dtype, const Shape& shape) const;

  void gemm(int64_t M, int64_t N, int64_t K, const MatrixRef& a, const MatrixRef& b, float* c, int64_t ldc,
            float alpha, bool accumulate) const {
    backend->gemm(*this, M, N, K, a, b, c, ldc, alpha, accumulate);
  }
  void lora_branch_forward(int64_t m, int64_t n, int64_t k, int64_t r, const void* x, DType x_dtype, const float* a,
                           const float* b, float scale, float* xa, float* y, int64_t ldy, bool accumulate_y) const {
    backend->lora_branch_forward(*this, m, n, k, r, x, x_dtype, a, b, scale, xa, y, ldy, accumulate_y);
  }
  void lora_branch_backward(int64_t m, int64_t n, int64_t k, int64_t r, const float* dy, const void* x, DType x_dtype,
                            const float* xa, const float* a, const float* b, float scale, float* g, float* da,
                            float* db, float* dx, bool accumulate_dx) const {
    backend->lora_branch_backward(*this, m, n, k, r, dy, x, x_dtype, xa, a, b, scale, g, da, db, dx, accumulate_dx);
  }
  void lora_batch_forward(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const LoraAdapterRef* adapters,
                          int64_t count, const LoraSegment* segments, int64_t nseg, float* y, int64_t ldy) const {
    backend->lora_batch_forward(*this, m, n, k, x, ldx, adapters, count, segments, nseg, y, ldy);
  }
  void dora_combine_forward(int64_t rows, int64_t n, const float* mag, const float* norm, const float* base,
                            const float* lora, float* y) const {
    backend->dora_combine_forward(*this, rows, n, mag, norm, base, lora, y);
  }
  void dora_combine_backward(int64_t rows, int64_t n, const float* mag, const float* norm, const float* dy,
                             const float* base, const float* lora, float* d_lora, float* d_base, float* gm) const {
    backend->dora_combine_backward(*this, rows, n, mag, norm, dy, base, lora, d_lora, d_base, gm);
  }
  void quant4_matmul(int64_t M, int64_t N, int64_t K, const MatrixRef& x, const Quant4Tensor& w, float* y, int64_t ldy,
                     float alpha, bool accumulate, DType compute) const {
    backend->quant4_matmul(*this, M, N, K, x, w, y, ldy, alpha, accumulate, compute);
  }
  void quant4_matmul_dx(int64_t M, int64_t N, int64_t K, const float* dy, const Quant4Tensor& w, float* dx,
                        float alpha, bool accumulate, DType compute) const {
    backend->quant4_matmul_dx(*this, M, N, K, dy, w, dx, alpha, accumulate, compute);
  }
  void dequantize4_rows(const Quant4Tensor& q, int64_t cols, int64_t r0, int64_t r1, float* out) const {
    backend->dequantize4_rows(*this, q, cols, r0, r1, out);
  }
  void ggml_matmul(int64_t M, const MatrixRef& x, const GgmlQuantTensor& w, float* y, int64_t ldy, float alpha,
                   bool accumulate, DType compute) const {
    backend->ggml_matmul(*this, M, x, w, y, ldy, alpha, accumulate, compute);
  }
  void ggml_matmul_dx(int64_t M, const float* dy, const GgmlQuantTensor& w, float* dx, float alpha, bool accumulate,
                      DType compute) const {
    backend->ggml_matmul_dx(*this, M, dy, w, dx, alpha, accumulate, compute);
  }
  void ggml_dequantize_rows(const GgmlQuantTensor& q, int64_t r0, int64_t r1, float* out) const {
    backend->ggml_dequantize_rows(*this, q, r0, r1, out);
  }
  void rmsnorm_forward(int64_t rows, int64_t dim, const float* x, const float* w, float eps, float* y,
                       float* rstd) const {
    backend->rmsnorm_forward(*this, rows, dim, x, w, eps, y, rstd);
  }
  void rmsnorm_backward(int64_t rows, int64_t dim, const float* dy, const float* x, const float* w, const float* rstd,
                        float* dx, float* dw, bool accumulate_dw) const {
    backend->rmsnorm_backward(*this, rows, dim, dy, x, w, rstd, dx, dw, accumulate_dw);
  }
  void layernorm_forward(int64_t rows, int64_t dim, const float* x, const float* w, const float* b, float eps, float* y,
                         float* mean, float* rstd) const {
    backend->layernorm_forward(*this, rows, dim, x, w, b, eps, y, mean, rstd);
  }
  void layernorm_backward(int64_t rows, int64_t dim, const float* dy, const float* x, const float* w, const float* mean,
                          const float* rstd, float* dx, float* dw, float* db, bool accumulate_dw) const {
    backend->layernorm_backward(*this, rows, dim, dy, x, w, mean, rstd, dx, dw, db, accumulate_dw);
  }
  void rope_apply(const RopeShape& s, const float* x, const int32_t* positions, const double* inv_freq, bool inverse,
                  float* y) const {
    backend->rope_apply(*this, s, x, positions, inv_freq, inverse, y);
  }
  void attention_forward(const AttentionShape& s, const AttentionMask& mask, float scale, const float* q,
                         const float* k, const float* v, float* out, float* lse) const {
    backend->attention_forward(*this, s, mask, scale, q, k, v, out, lse);
  }
  void attention_backward(const AttentionShape& s, const AttentionMask& mask, float scale, const float* q,
                          const float* k, const float* v, const float* out, const float* dout, const float* lse,
                          float* dq, float* dk, float* dv) const {
    backend->attention_backward(*this, s, mask, scale, q, k, v, out, dout, lse, dq, dk, dv);
  }
  void swiglu_forward(int64_t n, const float* gate, const float* up, float* h) const {
    backend->swiglu_forward(*this, n, gate, up, h);
  }
  void swiglu_backward(int64_t n, const float* dh, const float* gate, const float* up, float* d_gate,
                       float* d_up) const {
    backend->swiglu_backward(*this, n, dh, gate, up, d_gate, d_up);
  }
  void geglu_forward(int64_t n, const float* gate, const float* up, float* h) const {
    backend->geglu_forward(*this, n, gate, up, h);
  }
  void geglu_backward(int64_t n, const float* dh, const float* gate, const float* up, float* d_gate,
                      float* d_up) const {
    backend->geglu_backward(*this, n, dh, gate, up, d_gate, d_up);
  }
  void gelu_tanh_forward(int64_t n, const float* x, float* y) const { backend->gelu_tanh_forward(*this, n, x, y); }
  void gelu_tanh_backward(int64_t n, const float* dy, const float* x, float* dx) const {
    backend->gelu_tanh_backward(*this, n, dy, x, dx);
  }
  void gelu_erf_forward(int64_t n, const float* x, float* y) const { backend->gelu_erf_forward(*this, n, x, y); }
  void gelu_erf_backward(int64_t n, const float* dy, const float* x, float* dx) const {
    backend->gelu_erf_backward(*this, n, dy, x, dx);
  }
  void pointwise_forward(Pointwise a, int64_t n, const float* x, float* y) const {
    backend->pointwise_forward(*this, a, n, x, y);
  }
  void pointwise_backward(Pointwise a, int64_t n, const float* dy, const float* x, float* dx) const {
    backend->pointwise_backward(*this, a, n, dy, x, dx);
  }
  void softcap_forward(int64_t rows, int64_t cols, int64_t ld, float cap, float* x) const {
    backend->softcap_forward(*this, rows, cols, ld, cap, x);
  }
  void softcap_backward(int64_t rows, int64_t cols, int64_t ld, float cap, const float* y, float* dy) const {
    backend->softcap_backward(*this, rows, cols, ld, cap, y, dy);
  }
  void embedding_forward(int64_t n, int64_t vocab, int64_t dim, const int32_t* ids, const float* table,
                         float* out) const {
    backend->embedding_forward(*this, n, vocab, dim, ids, table, out);
  }
  void embedding_backward(int64_t n, int64_t vocab, int64_t dim, const float* dout, const int32_t* ids,
                          float* grad_table, bool accumulate) const {
    backend->embedding_backward(*this, n, vocab, dim, dout, ids, grad_table, accumulate);
  }
  CrossEntropyResult cross_entropy(int64_t rows, int64_t vocab, const float* logits, const int32_t* labels,
                                   int32_t ignore_index, double normalizer, float* row_loss, float* dlogits,
                                   int64_t ld = 0) const {
    return backend->cross_entropy(*this, rows, vocab, logits, labels, ignore_index, normalizer, row_loss, dlogits, ld);
  }
  void moe_route(int64_t m, int64_t E, int64_t K, bool normalize, float* scores, int32_t* chosen, float* weights) const {
    backend->moe_route(*this, m, E, K, normalize, scores, chosen, weights);
  }
  void moe_route_backward(int64_t m, int64_t E, int64_t K, bool normalize, const float* probs, const int32_t* chosen,
                          const float* weights, const double* d_weight, float* d_scores) const {
    backend->moe_route_backward(*this, m, E, K, normalize, probs, chosen, weights, d_weight, d_scores);
  }
  void gather_rows(int64_t n, int64_t H, const int64_t* rows, const float* src, float* dst) const {
    backend->gather_rows(*this, n, H, rows, src, dst);
  }
  void scatter_add_rows(int64_t n, int64_t H, const int64_t* rows, const float* scale, const float* src, float* dst) const {
    backend->scatter_add_rows(*this, n, H, rows, scale, src, dst);
  }
  void gather_rows_scaled_dot(int64_t n, int64_t H, const int64_t* rows, const float* scale, const float* g,
                              const float* y, float* out, double* dot) const {
    backend->gather_rows_scaled_dot(*this, n, H, rows, scale, g, y, out, dot);
  }
  void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) const {
    backend->convert(*this, dst, dst_dtype, src, src_dtype, n);
  }
  void scale_values(int64_t n, float factor, float* x) const { backend->scale_values(*this, n, factor, x); }
  void copy_values(int64_t n, const float* src, float* dst) const { backend->copy_values(*this, n, src, dst); }
  void add_values(int64_t n, const float* src, float* dst) const { backend->add_values(*this, n, src, dst); }
  void copy_columns(int64_t m, int64_t width, int64_t src_width, int64_t offset, const float* src, float* dst) const {
    backend->copy_columns(*this, m, width, src_width, offset, src, dst);
  }
  void place_columns(int64_t m, int64_t width, int64_t dst_width, int64_t offset, const float* src, float* dst) const {
    backend->place_columns(*this, m, width, dst_width, offset, src, dst);
  }
  void add_row_vector(int64_t m, int64_t n, int64_t ldy, const float* b, float* y) const {
    backend->add_row_vector(*this, m, n, ldy, b, y);
  }
  void add_column_sums(int64_t m, int64_t n, int64_t ldx, const float* x, float* acc) const {
    backend->add_column_sums(*this, m, n, ldx, x, acc);
  }
  void scale_columns(int64_t m, int64_t n, const float* scale, float* v) const {
    backend->scale_columns(*this, m, n, scale, v);
  }
  void add_column_dots(int64_t m, int64_t n, const float* u, const float* v, float* g) const {
    backend->add_column_dots(*this, m, n, u, v, g);
  }
};

// The CPU backend (host memory; the kernels of kernels/cpu/ at the active instruction set).
const Backend& cpu_backend();
// A context on the CPU backend, for models and ops that have not been given another.
const Context& cpu_context();
// Every backend this build has, by name; the first is the CPU backend.
std::vector<const Backend*> backends();
// Throws E_UNSUPPORTED naming the backends there are when `name` is not one of them.
const Backend& find_backend(const std::string& name);

}  // namespace peft::kernels
