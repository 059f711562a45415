// Fused optimizer steps: the hyper-parameter arithmetic (bias corrections) once per call, then the
// elementwise loop of the active instruction set over every tensor, spread over the pool.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/variants.h"
#include "kernels/optim.h"

namespace peft::kernels {

namespace {
constexpr int64_t kChunk = 1 << 14;  // elements per parallel work item

// A flat list of (slot, begin, end) chunks so that many small tensors and one big one both
// spread over the threads.
struct Chunk {
  int slot;
  int64_t begin;
  int64_t end;
};

std::vector<Chunk> make_chunks(const int64_t* sizes, int n) {
  std::vector<Chunk> chunks;
  for (int i = 0; i < n; ++i) {
    for (int64_t b = 0; b < sizes[i]; b += kChunk) chunks.push_back({i, b, std::min(sizes[i], b + kChunk)});
  }
  return chunks;
}

template <typename Body>
void for_each_chunk(const std::vector<Chunk>& chunks, const Body& body) {
  parallel_for(static_cast<int64_t>(chunks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) body(chunks[c]);
  });
}

std::vector<int64_t> slot_sizes(const ParamSlot* slots, int n) {
  std::vector<int64_t> sizes(n);
  for (int i = 0; i < n; ++i) sizes[i] = slots[i].size;
  return sizes;
}
}  // namespace

void adamw_step(const ParamSlot* slots, int n_slots, const AdamWHyper& h) {
  PEFT_CHECK(h.step >= 1, ErrorCode::Range, "Expected step >= 1 for AdamW but received " + std::to_string(h.step));
  const double t = static_cast<double>(h.step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), t);
  const float decay = 1.0f - h.lr * h.weight_decay;
  const float step_size = static_cast<float>(h.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const cpu::OptimSpans& spans = cpu::active_optim_spans();
  const std::vector<int64_t> sizes = slot_sizes(slots, n_slots);
  for_each_chunk(make_chunks(sizes.data(), n_slots), [&](const Chunk& c) {
    const ParamSlot& s = slots[c.slot];
    spans.adamw(s.param + c.begin, s.grad + c.begin, s.state0 + c.begin, s.state1 + c.begin, c.end - c.begin, decay,
                h.beta1, h.beta2, step_size, inv_sqrt_bc2, h.eps);
  });
}

void sgd_step(const ParamSlot* slots, int n_slots, const SgdHyper& h) {
  const cpu::OptimSpans& spans = cpu::active_optim_spans();
  const std::vector<int64_t> sizes = slot_sizes(slots, n_slots);
  for_each_chunk(make_chunks(sizes.data(), n_slots), [&](const Chunk& c) {
    const ParamSlot& s = slots[c.slot];
    float* buf = h.momentum != 0.0f ? s.state0 + c.begin : nullptr;
    spans.sgd(s.param + c.begin, s.grad + c.begin, buf, c.end - c.begin, h.lr, h.momentum, h.dampening,
              h.weight_decay, h.nesterov, h.first_step);
  });
}

double clip_grad_norm(float* const* grads, const int64_t* sizes, int n, double max_norm) {
  const cpu::OptimSpans& spans = cpu::active_optim_spans();
  const std::vector<Chunk> chunks = make_chunks(sizes, n);
  std::vector<double> partial(chunks.size());
  parallel_for(static_cast<int64_t>(chunks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      partial[i] = spans.sum_squares(grads[chunks[i].slot] + chunks[i].begin, chunks[i].end - chunks[i].begin);
    }
  });
  double total = 0;
  for (double p : partial) total += p;  // fixed order: the result does not depend on thread timing
  const double norm = std::sqrt(total);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    const float factor = static_cast<float>(coef);
    for_each_chunk(chunks, [&](const Chunk& c) { spans.scale(grads[c.slot] + c.begin, c.end - c.begin, factor); });
  }
  return norm;
}

}  // namespace peft::kernels
