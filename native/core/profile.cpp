#include "core/profile.h"

#include <cstdlib>
#include <cstring>

namespace peft::profile {

namespace {

bool enabled_from_env() {
  const char* env = std::getenv("PEFT_PROFILE");
  return env != nullptr && env[0] != '\0' && std::strcmp(env, "0") != 0;
}

std::atomic<int64_t> g_ns[kPhaseCount];
std::atomic<int64_t> g_calls[kPhaseCount];

const char* const kNames[kPhaseCount] = {"gemm", "head", "attention", "normAct", "loss", "embedding", "optimizer"};

}  // namespace

namespace detail {
std::atomic<bool> g_enabled{enabled_from_env()};
}

const char* phase_name(Phase phase) { return kNames[static_cast<int>(phase)]; }

void set_enabled(bool on) { detail::g_enabled.store(on, std::memory_order_relaxed); }

void add(Phase phase, int64_t ns) {
  const int i = static_cast<int>(phase);
  g_ns[i].fetch_add(ns, std::memory_order_relaxed);
  g_calls[i].fetch_add(1, std::memory_order_relaxed);
}

void reset() {
  for (int i = 0; i < kPhaseCount; ++i) {
    g_ns[i].store(0, std::memory_order_relaxed);
    g_calls[i].store(0, std::memory_order_relaxed);
  }
}

Totals totals() {
  Totals t{};
  for (int i = 0; i < kPhaseCount; ++i) {
    t.ns[i] = g_ns[i].load(std::memory_order_relaxed);
    t.calls[i] = g_calls[i].load(std::memory_order_relaxed);
  }
  return t;
}

}  // namespace peft::profile
