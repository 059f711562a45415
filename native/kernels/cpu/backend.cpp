// The CPU backend's op table: each entry forwards to the kernel of the same name (which runs at
// the active instruction set, kernels/isa.h), over host memory.
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/activation.h"
#include "kernels/backend.h"
#include "kernels/convert.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/lowrank.h"
#include "kernels/moe.h"
#include "kernels/norm.h"

namespace peft::kernels {

namespace {

// The dequantized-panel buffer of this thread's compressed-weight products (4-bit and ggml
// blocks), grown to the largest layer seen.
float* panel_workspace(int64_t floats) {
  thread_local std::vector<float> buffer;
  const auto need = static_cast<size_t>(floats);
  if (buffer.size() < need) buffer.resize(need);
  return buffer.data();
}
float* quant4_workspace(int64_t N, int64_t K) { return panel_workspace(quant4_matmul_workspace(N, K)); }

Backend make_cpu_backend() {
  Backend b{};
  b.name = "cpu";
  b.allocator = &host_allocator();
  b.gemm = [](const Context&, int64_t M, int64_t N, int64_t K, const MatrixRef& a, const MatrixRef& bm, float* c,
              int64_t ldc, float alpha, bool acc) { gemm(M, N, K, a, bm, c, ldc, alpha, acc); };
  b.lora_branch_forward = [](const Context&, int64_t m, int64_t n, int64_t k, int64_t r, const void* x, DType xd,
                             const float* a, const float* bm, float scale, float* xa, float* y, int64_t ldy,
                             bool acc) { lora_branch_forward(m, n, k, r, x, xd, a, bm, scale, xa, y, ldy, acc); };
  b.lora_branch_backward = [](const Context&, int64_t m, int64_t n, int64_t k, int64_t r, const float* dy,
                              const void* x, DType xd, const float* xa, const float* a, const float* bm, float scale,
                              float* g, float* da, float* db, float* dx, bool acc) {
    lora_branch_backward(m, n, k, r, dy, x, xd, xa, a, bm, scale, g, da, db, dx, acc);
  };
  b.lora_batch_forward = [](const Context&, int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx,
                            const LoraAdapterRef* adapters, int64_t count, const LoraSegment* segments, int64_t nseg, float* y,
                            int64_t ldy) { lora_batch_forward(m, n, k, x, ldx, adapters, count, segments, nseg, y, ldy); };
  b.dora_combine_forward = [](const Context&, int64_t rows, int64_t n, const float* mag, const float* norm,
                              const float* base, const float* lora, float* y) {
    dora_combine_forward(rows, n, mag, norm, base, lora, y);
  };
  b.dora_combine_backward = [](const Context&, int64_t rows, int64_t n, const float* mag, const float* norm,
                               const float* dy, const float* base, const float* lora, float* d_lora, float* d_base,
                               float* gm) { dora_combine_backward(rows, n, mag, norm, dy, base, lora, d_lora, d_base, gm); };
  b.quant4_matmul = [](const Context&, int64_t M, int64_t N, int64_t K, const MatrixRef& x, const Quant4Tensor& w,
                       float* y, int64_t ldy, float alpha, bool acc, DType compute) {
    quant4_matmul(M, N, K, x, w, y, ldy, alpha, acc, quant4_workspace(N, K), compute);
  };
  b.quant4_matmul_dx = [](const Context&, int64_t M, int64_t N, int64_t K, const float* dy, const Quant4Tensor& w,
                          float* dx, float alpha, bool acc, DType compute) {
    quant4_matmul_dx(M, N, K, dy, w, dx, alpha, acc, quant4_workspace(N, K), compute);
  };
  b.dequantize4_rows = [](const Context&, const Quant4Tensor& q, int64_t cols, int64_t r0, int64_t r1, float* out) {
    dequantize4_rows(q, cols, r0, r1, out);
  };
  b.ggml_matmul = [](const Context&, int64_t M, const MatrixRef& x, const GgmlQuantTensor& w, float* y, int64_t ldy,
                     float alpha, bool acc, DType compute) {
    ggml_matmul(M, x, w, y, ldy, alpha, acc, panel_workspace(ggml_matmul_workspace(w)), compute);
  };
  b.ggml_matmul_dx = [](const Context&, int64_t M, const float* dy, const GgmlQuantTensor& w, float* dx, float alpha,
                        bool acc, DType compute) {
    ggml_matmul_dx(M, dy, w, dx, alpha, acc, panel_workspace(ggml_matmul_workspace(w)), compute);
  };
  b.ggml_dequantize_rows = [](const Context&, const GgmlQuantTensor& q, int64_t r0, int64_t r1, float* out) {
    ggml_dequantize_rows(q, r0, r1, out);
  };
  b.rmsnorm_forward = [](const Context&, int64_t rows, int64_t dim, const float* x, const float* w, float eps,
                         float* y, float* rstd) { rmsnorm_forward(rows, dim, x, w, eps, y, rstd); };
  b.rmsnorm_backward = [](const Context&, int64_t rows, int64_t dim, const float* dy, const float* x, const float* w,
                          const float* rstd, float* dx, float* dw, bool acc) {
    rmsnorm_backward(rows, dim, dy, x, w, rstd, dx, dw, acc);
  };
  b.layernorm_forward = [](const Context&, int64_t rows, int64_t dim, const float* x, const float* w, const float* bias,
                           float eps, float* y, float* mean, float* rstd) {
    layernorm_forward(rows, dim, x, w, bias, eps, y, mean, rstd);
  };
  b.layernorm_backward = [](const Context&, int64_t rows, int64_t dim, const float* dy, const float* x,
                            const float* w, const float* mean, const float* rstd, float* dx, float* dw, float* db,
                            bool acc) { layernorm_backward(rows, dim, dy, x, w, mean, rstd, dx, dw, db, acc); };
  b.rope_apply = [](const Context&, const RopeShape& s, const float* x, const int32_t* positions,
                    const double* inv_freq, bool inverse, float* y) { rope_apply(s, x, positions, inv_freq, inverse, y); };
  b.attention_forward = [](const Context&, const AttentionShape& s, const AttentionMask& mask, float scale,
                           const float* q, const float* k, const float* v, float* out, float* lse) {
    attention_forward(s, mask, scale, q, k, v, out, lse);
  };
  b.attention_backward = [](const Context&, const AttentionShape& s, const AttentionMask& mask, float scale,
                            const float* q, const float* k, const float* v, const float* out, const float* dout,
                            const float* lse, float* dq, float* dk, float* dv) {
    attention_backward(s, mask, scale, q, k, v, out, dout, lse, dq, dk, dv);
  };
  b.swiglu_forward = [](const Context&, int64_t n, const float* g, const float* u, float* h) { swiglu_forward(n, g, u, h); };
  b.swiglu_backward = [](const Context&, int64_t n, const float* dh, const float* g, const float* u, float* dg,
                         float* du) { swiglu_backward(n, dh, g, u, dg, du); };
  b.geglu_forward = [](const Context&, int64_t n, const float* g, const float* u, float* h) { geglu_forward(n, g, u, h); };
  b.geglu_backward = [](const Context&, int64_t n, const float* dh, const float* g, const float* u, float* dg,
                        float* du) { geglu_backward(n, dh, g, u, dg, du); };
  b.gelu_tanh_forward = [](const Context&, int64_t n, const float* x, float* y) { gelu_tanh_forward(n, x, y); };
  b.gelu_tanh_backward = [](const Context&, int64_t n, const float* dy, const float* x, float* dx) {
    gelu_tanh_backward(n, dy, x, dx);
  };
  b.gelu_erf_forward = [](const Context&, int64_t n, const float* x, float* y) { gelu_erf_forward(n, x, y); };
  b.gelu_erf_backward = [](const Context&, int64_t n, const float* dy, const float* x, float* dx) {
    gelu_erf_backward(n, dy, x, dx);
  };
  b.pointwise_forward = [](const Context&, Pointwise a, int64_t n, const float* x, float* y) {
    pointwise_forward(a, n, x, y);
  };
  b.pointwise_backward = [](const Context&, Pointwise a, int64_t n, const float* dy, const float* x, float* dx) {
    pointwise_backward(a, n, dy, x, dx);
  };
  b.softcap_forward = [](const Context&, int64_t rows, int64_t cols, int64_t ld, float cap, float* x) {
    softcap_forward(rows, cols, ld, cap, x);
  };
  b.softcap_backward = [](const Context&, int64_t rows, int64_t cols, int64_t ld, float cap, const float* y,
                          float* dy) { softcap_backward(rows, cols, ld, cap, y, dy); };
  b.embedding_forward = [](const Context&, int64_t n, int64_t vocab, int64_t dim, const int32_t* ids,
                           const float* table, float* out) { embedding_forward(n, vocab, dim, ids, table, out); };
  b.embedding_backward = [](const Context&, int64_t n, int64_t vocab, int64_t dim, const float* dout,
                            const int32_t* ids, float* grad, bool acc) {
    embedding_backward(n, vocab, dim, dout, ids, grad, acc);
  };
  b.cross_entropy = [](const Context&, int64_t rows, int64_t vocab, const float* logits, const int32_t* labels,
                       int32_t ignore, double normalizer, float* row_loss, float* dlogits, int64_t ld) {
    return cross_entropy(rows, vocab, logits, labels, ignore, normalizer, row_loss, dlogits, ld);
  };
  b.moe_route = [](const Context&, int64_t m, int64_t E, int64_t K, bool normalize, float* scores, int32_t* chosen,
                   float* weights) { moe_route(m, E, K, normalize, scores, chosen, weights); };
  b.moe_route_backward = [](const Context&, int64_t m, int64_t E, int64_t K, bool normalize, const float* probs,
                            const int32_t* chosen, const float* weights, const double* d_weight, float* d_scores) {
    moe_route_backward(m, E, K, normalize, probs, chosen, weights, d_weight, d_scores);
  };
  b.gather_rows = [](const Context&, int64_t n, int64_t H, const int64_t* rows, const float* src, float* dst) {
    gather_rows(n, H, rows, src, dst);
  };
  b.scatter_add_rows = [](const Context&, int64_t n, int64_t H, const int64_t* rows, const float* scale, const float* src,
                          float* dst) { scatter_add_rows(n, H, rows, scale, src, dst); };
  b.gather_rows_scaled_dot = [](const Context&, int64_t n, int64_t H, const int64_t* rows, const float* scale,
                                const float* g, const float* y, float* out, double* dot) {
    gather_rows_scaled_dot(n, H, rows, scale, g, y, out, dot);
  };
  b.convert = [](const Context&, void* dst, DType dd, const void* src, DType sd, int64_t n) { convert(dst, dd, src, sd, n); };
  b.scale_values = [](const Context&, int64_t n, float f, float* x) { scale_values(n, f, x); };
  b.copy_values = [](const Context&, int64_t n, const float* s, float* d) { copy_values(n, s, d); };
  b.add_values = [](const Context&, int64_t n, const float* s, float* d) { add_values(n, s, d); };
  b.copy_columns = [](const Context&, int64_t m, int64_t w, int64_t sw, int64_t off, const float* s, float* d) {
    copy_columns(m, w, sw, off, s, d);
  };
  b.place_columns = [](const Context&, int64_t m, int64_t w, int64_t dw, int64_t off, const float* s, float* d) {
    place_columns(m, w, dw, off, s, d);
  };
  b.add_row_vector = [](const Context&, int64_t m, int64_t n, int64_t ld, const float* v, float* y) {
    add_row_vector(m, n, ld, v, y);
  };
  b.add_column_sums = [](const Context&, int64_t m, int64_t n, int64_t ld, const float* x, float* acc) {
    add_column_sums(m, n, ld, x, acc);
  };
  b.scale_columns = [](const Context&, int64_t m, int64_t n, const float* s, float* v) { scale_columns(m, n, s, v); };
  b.add_column_dots = [](const Context&, int64_t m, int64_t n, const float* u, const float* v, float* g) {
    add_column_dots(m, n, u, v, g);
  };
  return b;
}

}  // namespace

std::shared_ptr<Tensor> Context::zeros(DType dtype, const Shape& shape) const {
  return std::make_shared<Tensor>(dtype, shape, allocator());
}

std::shared_ptr<Tensor> Context::empty(DType dtype, const Shape& shape) const {
  return std::make_shared<Tensor>(Tensor::uninitialized(dtype, shape, allocator()));
}

const Backend& cpu_backend() {
  static const Backend backend = make_cpu_backend();
  return backend;
}

const Context& cpu_context() {
  static const Context context{&cpu_backend()};
  return context;
}

std::vector<const Backend*> backends() { return {&cpu_backend()}; }

const Backend& find_backend(const std::string& name) {
  std::string names;
  for (const Backend* b : backends()) {
    if (name == b->name) return *b;
    names += (names.empty() ? "" : ", ") + std::string(b->name);
  }
  throw Error(ErrorCode::Unsupported, "Unknown backend '" + name + "'; this build has: " + names);
}

}  // namespace peft::kernels
