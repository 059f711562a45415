// Wall time per phase of a training step, summed over the whole process, for the training
// benchmark's breakdown (scripts/bench/train.js). Off by default: PEFT_PROFILE=1 at start-up or
// set_enabled(true) turns it on. When off, a Scope costs one relaxed atomic load and no clock read.
// Scopes time the calling thread's wall clock around a whole call (thread-pool work included), so
// wrap calls, not code that runs inside pool tasks, and do not nest scopes.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

namespace peft::profile {

enum class Phase : int {
  Gemm,       // the blocks' linear layers, forward and backward (base product, LoRA / DoRA branches, 4-bit dequant)
  Head,       // the output head's products (logits and their dx; its dW when it trains)
  Attention,  // attention forward and backward (scores, softmax, weighted sums)
  NormAct,    // RMSNorm, RoPE and SwiGLU, forward and backward
  Loss,       // cross-entropy over the vocabulary (loss and d logits)
  Embedding,  // token lookup (with virtual tokens) and its backward
  Optimizer,  // fused optimizer steps (AdamW, SGD)
  Count,
};
constexpr int kPhaseCount = static_cast<int>(Phase::Count);

const char* phase_name(Phase phase);

namespace detail {
extern std::atomic<bool> g_enabled;
}

inline bool enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);
// Adds one call of `ns` nanoseconds to a phase.
void add(Phase phase, int64_t ns);
// Zeroes every phase.
void reset();

struct Totals {
  int64_t ns[kPhaseCount];
  int64_t calls[kPhaseCount];
};
Totals totals();

// Times its own lifetime into a phase when profiling was on at its construction.
class Scope {
 public:
  explicit Scope(Phase phase) : phase_(phase), on_(enabled()) {
    if (on_) start_ = std::chrono::steady_clock::now();
  }
  ~Scope() {
    if (on_) add(phase_, std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count());
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Phase phase_;
  bool on_;
  std::chrono::steady_clock::time_point start_{};
};

}  // namespace peft::profile

// Times the rest of the enclosing block into phase `name` (a peft::profile::Phase enumerator).
#define PEFT_PROFILE_CAT2(a, b) a##b
#define PEFT_PROFILE_CAT(a, b) PEFT_PROFILE_CAT2(a, b)
#define PEFT_PROFILE_SCOPE(name) \
  ::peft::profile::Scope PEFT_PROFILE_CAT(peft_profile_scope_, __LINE__)(::peft::profile::Phase::name)
