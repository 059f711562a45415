// Multi-adapter LoRA over a batch (kernels/lora_batch.h). A long segment is two GEMMs, x_s·Aᵀ into
// an [rows, r] scratch and its product with Bᵀ added into y_s, each threaded inside. Short segments
// (decode: one row per request, each request on its own adapter) would leave those products with a
// row or two apiece, so they are gathered into one parallel loop over rows: each row's x·Aᵀ and then
// (x·Aᵀ)·Bᵀ through the active instruction set's matrix-vector loops, the adapter's A and B read
// once per row, as Punica's BGMV does.
#include "kernels/lora_batch.h"

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/variants.h"
#include "kernels/gemm.h"

namespace peft::kernels {

namespace {

constexpr int64_t kMaxRank = 1024;  // xa of one row lives on the stack

void check_segments(int64_t m, int64_t count, const LoraAdapterRef* adapters, const LoraSegment* segments, int64_t nseg) {
  for (int64_t s = 0; s < nseg; ++s) {
    const LoraSegment& g = segments[s];
    PEFT_CHECK(g.row0 >= 0 && g.rows >= 0 && g.row0 + g.rows <= m, ErrorCode::Range,
               "Expected segment " + std::to_string(s) + " inside the " + std::to_string(m) + " rows but it covers [" +
                   std::to_string(g.row0) + ", " + std::to_string(g.row0 + g.rows) + ")");
    PEFT_CHECK(g.adapter >= -1 && g.adapter < count, ErrorCode::Range,
               "Expected an adapter index in [-1, " + std::to_string(count) + ") for segment " + std::to_string(s) +
                   " but received " + std::to_string(g.adapter));
    if (g.adapter >= 0) {
      const int64_t r = adapters[g.adapter].r;
      PEFT_CHECK(r >= 1 && r <= kMaxRank, ErrorCode::Range,
                 "Expected a rank in [1, " + std::to_string(kMaxRank) + "] for adapter " + std::to_string(g.adapter) +
                     " but received " + std::to_string(r));
    }
  }
}

// Multiply-adds below which a task is not worth a thread.
constexpr int64_t kMinTaskWork = 16 * 1024;

// The rows of one long segment: two threaded GEMMs through an [rows, r] scratch.
void segment_by_gemm(const LoraSegment& g, const LoraAdapterRef& ad, int64_t n, int64_t k, const float* x, int64_t ldx,
                     float* y, int64_t ldy, std::vector<float>& xa) {
  xa.resize(static_cast<size_t>(g.rows * ad.r));
  const float* xs = x + g.row0 * ldx;
  gemm(g.rows, ad.r, k, MatrixRef{xs, DType::F32, ldx, false}, MatrixRef{ad.a, DType::F32, k, true}, xa.data(), ad.r,
       1.0f, false);
  gemm(g.rows, n, ad.r, MatrixRef{xa.data(), DType::F32, ad.r, false}, MatrixRef{ad.b, DType::F32, ad.r, true},
       y + g.row0 * ldy, ldy, ad.scale, true);
}

}  // namespace

void lora_batch_forward(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const LoraAdapterRef* adapters,
                        int64_t count, const LoraSegment* segments, int64_t nseg, float* y, int64_t ldy) {
  check_segments(m, count, adapters, segments, nseg);
  // Rows of the short segments, as (row, adapter) pairs for one parallel loop.
  std::vector<std::pair<int64_t, int32_t>> short_rows;
  std::vector<float> xa;
  for (int64_t s = 0; s < nseg; ++s) {
    const LoraSegment& g = segments[s];
    if (g.adapter < 0 || g.rows == 0) continue;
    if (g.rows >= kLoraGemmRows) {
      segment_by_gemm(g, adapters[g.adapter], n, k, x, ldx, y, ldy, xa);
      continue;
    }
    for (int64_t i = g.row0; i < g.row0 + g.rows; ++i) short_rows.emplace_back(i, g.adapter);
  }
  if (short_rows.empty()) return;
  const cpu::GemvSpans& spans = cpu::active_gemv_spans();
  // Rows per task: enough multiply-adds that waking a thread pays (tiny layers run on the caller).
  int64_t rank = 1;
  for (int64_t a = 0; a < count; ++a) rank = std::max(rank, adapters[a].r);
  const int64_t grain = std::max<int64_t>(1, kMinTaskWork / (rank * (k + n)));
  parallel_for(static_cast<int64_t>(short_rows.size()), grain, [&](int64_t i0, int64_t i1) {
    float xa_row[kMaxRank];
    for (int64_t i = i0; i < i1; ++i) {
      const auto [row, index] = short_rows[static_cast<size_t>(i)];
      const LoraAdapterRef& ad = adapters[index];
      // xa = x_row·Aᵀ: r dot products along A's rows; then y_row += scale · xa·Bᵀ: n dots of length r.
      spans.dot_rows_f32(1, ad.r, k, x + row * ldx, ldx, ad.a, k, xa_row, ad.r, 1.0f, false);
      spans.dot_rows_f32(1, n, ad.r, xa_row, ad.r, ad.b, ad.r, y + row * ldy, ldy, ad.scale, true);
    }
  });
}

}  // namespace peft::kernels
