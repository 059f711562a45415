// LoRA over a batch whose rows use different adapters (serving many adapters on one base model, as
// Punica's SGMV / BGMV and S-LoRA do): the rows come in segments of consecutive rows that share an
// adapter, and one call applies every segment's rank-r update, y += scale · (x·Aᵀ)·Bᵀ, without forming
// B·A and without a whole-batch product per adapter. Long segments (prefill) go through the blocked
// GEMM; short ones (decode, one row per request) through the matrix-vector loops, spread over the
// threads by row.
#pragma once
#include <cstdint>

namespace peft::kernels {

// One adapter's factors for a layer [n out, k in].
struct LoraAdapterRef {
  const float* a;  // lora_A [r, k] f32
  const float* b;  // lora_B [n, r] f32
  int64_t r;       // its rank (adapters of one batch may differ)
  float scale;     // lora_alpha / r (or / sqrt(r))
};

// Rows [row0, row0 + rows) use adapters[adapter]; adapter -1: no adapter (the rows are left alone).
struct LoraSegment {
  int64_t row0;
  int64_t rows;
  int32_t adapter;
};

// Segments shorter than this run as matrix-vector products, longer ones through the GEMM.
constexpr int64_t kLoraGemmRows = 8;

// y[i, :] (row stride ldy) += scale · (x[i, :]·Aᵀ)·Bᵀ with the adapter of row i's segment.
// x: [m, k] f32 at row stride ldx; adapters: [count]; segments: [nseg], disjoint, inside [0, m).
// Throws E_RANGE for a segment outside the rows or an adapter index outside [-1, count).
void lora_batch_forward(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const LoraAdapterRef* adapters,
                        int64_t count, const LoraSegment* segments, int64_t nseg, float* y, int64_t ldy);

}  // namespace peft::kernels
