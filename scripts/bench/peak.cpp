// Measures this CPU's arithmetic peak: a loop of independent FMA (or bf16 dot-product) chains that
// keeps every FMA pipe busy and never touches memory. Built by peak.js once per variant with that
// variant's -m flags, so each binary only contains the instructions its flags allow.
//
//   peak <variant> <cpus> [seconds]
//   variant: avx2 (256-bit _mm256_fmadd_ps), avx512 (512-bit _mm512_fmadd_ps),
//            avx512bf16 (_mm512_dpbf16_ps)
//   cpus: comma-separated logical CPUs, one thread pinned to each; or xN for N unpinned threads
// Prints one JSON line: {"variant", "threads", "gflops", "seconds", "flopsPerInstr"}.
//
// Flop convention: an FMA lane is 2 flops (multiply + add); a dpbf16ps f32 lane takes two bf16
// pairs and does 2 multiplies + 2 adds = 4 flops, so one 512-bit dpbf16ps is 16 x 4 = 64 flops.
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// Enough independent chains to cover latency x pipes: Zen 3 / Intel have 2 FMA pipes with
// 4-cycle latency (8 in flight); 12 ymm chains leave room, and 24 zmm chains cover AVX-512
// parts and dpbf16ps's longer latency. All stay in registers (16 ymm / 32 zmm).
constexpr int kChains256 = 12;
constexpr int kChains512 = 24;

struct Kernel {
  double flops_per_instr;
  int chains;
  double (*run)(long iters);  // returns a value derived from the accumulators (keeps them live)
};

#if defined(__AVX2__) && defined(__FMA__)
double run_avx2(long iters) {
  __m256 acc[kChains256];
  for (int i = 0; i < kChains256; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  // acc = acc * m + c converges to c / (1 - m): no overflow, no denormals.
  const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains256; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains256; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0];
}
#endif

#if defined(__AVX512F__)
// Folds the accumulators into one number (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized).
double sum512(const __m512* acc) {
  __m512 s = acc[0];
  for (int i = 1; i < kChains512; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  double total = 0;
  for (float v : out) total += v;
  return total;
}

double run_avx512(long iters) {
  __m512 acc[kChains512];
  for (int i = 0; i < kChains512; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < kChains512; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  }
  return sum512(acc);
}
#endif

#if defined(__AVX512BF16__)
double run_avx512bf16(long iters) {
  __m512 acc[kChains512];
  for (int i = 0; i < kChains512; ++i) acc[i] = _mm512_set1_ps(1.0f + i);
  // Small products keep the sums far from overflow for any realistic iteration count.
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.001f), _mm512_set1_ps(0.002f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.003f), _mm512_set1_ps(0.004f));
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < kChains512; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  return sum512(acc);
}
#endif

bool find_kernel(const std::string& variant, Kernel* k) {
#if defined(__AVX2__) && defined(__FMA__)
  if (variant == "avx2") { *k = {8 * 2, kChains256, run_avx2}; return true; }
#endif
#if defined(__AVX512F__)
  if (variant == "avx512") { *k = {16 * 2, kChains512, run_avx512}; return true; }
#endif
#if defined(__AVX512BF16__)
  if (variant == "avx512bf16") { *k = {16 * 4, kChains512, run_avx512bf16}; return true; }
#endif
  (void)variant;
  (void)k;
  return false;
}

void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);  // best effort: unpinned still works
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs `iters` iterations on every thread at once; returns the wall time of the slowest.
double timed_run(const Kernel& k, const std::vector<int>& cpus, long iters) {
  const size_t n = cpus.size();
  std::atomic<size_t> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> sink(n);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      if (cpus[t] >= 0) pin_to(cpus[t]);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      sink[t] = k.run(iters);
    });
  }
  while (ready.load() < n) {
  }
  const auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  const double secs = seconds_since(t0);
  double s = 0;
  for (double v : sink) s += v;
  if (s == 12345.678) std::printf("#");  // never true; makes the results observable
  return secs;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <avx2|avx512|avx512bf16> <cpu,cpu,...|xN> [seconds]\n", argv[0]);
    return 2;
  }
  Kernel k;
  if (!find_kernel(argv[1], &k)) {
    std::fprintf(stderr, "variant %s was not compiled into this binary\n", argv[1]);
    return 2;
  }
  std::vector<int> cpus;  // -1: not pinned
  if (argv[2][0] == 'x') {
    cpus.assign(std::max(1, std::atoi(argv[2] + 1)), -1);
  } else {
    for (char* p = std::strtok(argv[2], ","); p != nullptr; p = std::strtok(nullptr, ",")) cpus.push_back(std::atoi(p));
  }
  if (cpus.empty()) cpus.push_back(-1);
  const double target = argc > 3 ? std::atof(argv[3]) : 0.3;
  const size_t threads = cpus.size();

  // Grow the iteration count until one run lasts ~target seconds (also warms clocks up), then keep
  // the best of three runs: the peak is the fastest the machine sustains, not the average.
  long iters = 1 << 16;
  while (timed_run(k, cpus, iters) < target / 4) iters *= 2;
  iters *= 4;
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const double s = timed_run(k, cpus, iters);
    if (s < best) best = s;
  }
  const double flops = k.flops_per_instr * k.chains * static_cast<double>(iters) * threads;
  std::printf("{\"variant\":\"%s\",\"threads\":%zu,\"gflops\":%.2f,\"seconds\":%.4f,\"flopsPerInstr\":%g}\n", argv[1],
              threads, flops / best / 1e9, best, k.flops_per_instr);
  return 0;
}
