// The small-M GEMM path (gemv.h): stages the rows of A as f32 when needed, then splits the output
// columns over the pool; each task runs every term over its columns with the active GemvSpans.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/convert.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

// Crossovers with the packed path (scripts/bench/gemv.js): with B transposed (y = x·Wᵀ) the dot
// products keep up with the packed tiles' FMA rate well past M = 32; the column sums (dx = dy·W)
// store their partial sums every row of B and lose past M = 8.
constexpr int64_t kMaxRowsDot = 32;
constexpr int64_t kMaxRowsAxpy = 8;
// Weight elements per pool task (128 KiB of f32): below about this much streaming, waking a thread
// costs more than it saves.
constexpr int64_t kGrain = 32 * 1024;
constexpr int64_t kMaxTasks = 1024;
// Column split unit: whole 64-byte lines of each output row per task.
constexpr int64_t kUnit = 16;
// Column sums (B not transposed) read a piece of every row of B per task, so they split only into
// one range per thread, each at least this many columns (4 KiB of an f32 row): shorter pieces, or
// a thread preempted while it holds half the work, made two threads slower than one.
constexpr int64_t kAxpyMinColumns = 1024;
// Bytes of B per column block when rows of A come in several chunks (well inside a 1 MiB L2).
constexpr int64_t kL2Slice = 256 * 1024;
// PEFT_GEMV_MAX_ROWS is clamped to this (rows come in chunks of kGemvMaxRows).
constexpr int64_t kMaxRowsLimit = 256;

// A term's rows of op(A) as f32: the operand itself when it already is (not transposed), otherwise a
// converted copy in `staged` ([M, k] at `offset`).
struct RowsOfA {
  const float* data;
  int64_t ld;
};

bool needs_staging(const MatrixRef& a) { return a.dtype != DType::F32 || a.trans; }

RowsOfA stage_a(int64_t M, const GemmTerm& term, float* dst) {
  const MatrixRef& a = term.a;
  if (!needs_staging(a)) return {static_cast<const float*>(a.data), a.ld};
  for (int64_t i = 0; i < M; ++i) {
    float* row = dst + i * term.k;
    if (!a.trans) {  // bf16 row i: contiguous
      convert(row, DType::F32, static_cast<const uint16_t*>(a.data) + i * a.ld, DType::BF16, term.k);
    } else if (a.dtype == DType::F32) {  // op(A)[i, p] = A[p, i]
      const float* src = static_cast<const float*>(a.data) + i;
      for (int64_t p = 0; p < term.k; ++p) row[p] = src[p * a.ld];
    } else {
      const uint16_t* src = static_cast<const uint16_t*>(a.data) + i;
      for (int64_t p = 0; p < term.k; ++p) row[p] = bf16_to_f32(src[p * a.ld]);
    }
  }
  return {dst, term.k};
}

// C[r0:r0+m, n0:n1] (+)= term, on the calling thread.
void run_term(const GemvSpans& spans, const GemmTerm& term, const RowsOfA& x, int64_t r0, int m, int64_t n0,
              int64_t n1, float* c, int64_t ldc, bool accumulate) {
  const MatrixRef& b = term.b;
  const int64_t n = n1 - n0;
  const float* xs = x.data + r0 * x.ld;
  float* y = c + r0 * ldc + n0;
  if (b.trans) {  // op(B)[p, j] = B[j, p]: rows n0.. of the stored B
    const int64_t offset = n0 * b.ld;
    if (b.dtype == DType::F32) {
      spans.dot_rows_f32(m, n, term.k, xs, x.ld, static_cast<const float*>(b.data) + offset, b.ld, y, ldc, term.alpha,
                         accumulate);
    } else {
      spans.dot_rows_bf16(m, n, term.k, xs, x.ld, static_cast<const uint16_t*>(b.data) + offset, b.ld, y, ldc,
                          term.alpha, accumulate);
    }
  } else {  // op(B)[p, j] = B[p, j]: columns n0.. of the stored B
    if (b.dtype == DType::F32) {
      spans.axpy_rows_f32(m, n, term.k, xs, x.ld, static_cast<const float*>(b.data) + n0, b.ld, y, ldc, term.alpha,
                          accumulate);
    } else {
      spans.axpy_rows_bf16(m, n, term.k, xs, x.ld, static_cast<const uint16_t*>(b.data) + n0, b.ld, y, ldc,
                           term.alpha, accumulate);
    }
  }
}

// Bytes of the rows of A one chunk may hold: with the x rows in L1 next to the weight lines, every
// load of x hits; 8 rows of a 1536-wide input (48 KiB) did not fit, and that product ran at half the
// weight bandwidth of the 576-wide ones.
constexpr int64_t kL1Rows = 24 * 1024;

// Rows of A per pass of the loops: kGemvMaxRows, or fewer when a term's rows are long.
int64_t rows_per_chunk(const std::vector<const GemmTerm*>& live) {
  int64_t k = 1;
  for (const GemmTerm* term : live) k = std::max(k, term->k);
  return std::clamp<int64_t>(kL1Rows / (k * static_cast<int64_t>(sizeof(float))), 1, kGemvMaxRows);
}

// Columns per block such that each term's slice of B stays in L2 while every chunk of rows of A
// passes over it: B comes from memory once however many chunks there are.
int64_t block_columns(const std::vector<const GemmTerm*>& live, int64_t M, int64_t chunk) {
  if (M <= chunk) return INT64_MAX;  // one chunk: no reuse to block for
  int64_t bytes_per_column = 0;
  for (const GemmTerm* term : live) bytes_per_column += term->k * static_cast<int64_t>(dtype_size(term->b.dtype));
  return std::max<int64_t>(kUnit, kL2Slice / std::max<int64_t>(1, bytes_per_column) / kUnit * kUnit);
}

// PEFT_GEMV_MAX_ROWS as a number in [0, kMaxRowsLimit], or -1 when unset or not a number.
int64_t read_max_rows() {
  const char* env = std::getenv("PEFT_GEMV_MAX_ROWS");
  if (env == nullptr || *env == '\0') return -1;
  char* end = nullptr;
  const long value = std::strtol(env, &end, 10);
  if (end == env || *end != '\0' || value < 0) return -1;
  return std::min<int64_t>(value, kMaxRowsLimit);
}

thread_local std::vector<float> t_staged;

}  // namespace

bool gemv_applies(int64_t M, const GemmTerm* terms, int n_terms) {
  static const int64_t forced = read_max_rows();
  if (forced >= 0) return M <= forced;
  bool all_dot = true;
  for (int t = 0; t < n_terms; ++t) all_dot = all_dot && terms[t].b.trans;
  return M <= (all_dot ? kMaxRowsDot : kMaxRowsAxpy);
}

void gemv_sum(int64_t M, int64_t N, const GemmTerm* terms, int n_terms, float* c, int64_t ldc, bool accumulate) {
  const GemvSpans& spans = active_gemv_spans();
  // Terms with K = 0 add nothing (as in the packed path); stage the others' rows of A.
  std::vector<const GemmTerm*> live;
  size_t staged_size = 0;
  int64_t work = 0;
  for (int t = 0; t < n_terms; ++t) {
    if (terms[t].k == 0) continue;
    live.push_back(&terms[t]);
    if (needs_staging(terms[t].a)) staged_size += static_cast<size_t>(M * terms[t].k);
    work += N * terms[t].k;
  }
  if (live.empty()) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(c + i * ldc, 0, sizeof(float) * N);
    return;
  }
  if (t_staged.size() < staged_size) t_staged.resize(staged_size);
  std::vector<RowsOfA> rows;
  size_t offset = 0;
  for (const GemmTerm* term : live) {
    rows.push_back(stage_a(M, *term, t_staged.data() + offset));
    if (needs_staging(term->a)) offset += static_cast<size_t>(M * term->k);
  }

  bool all_dot = true;
  for (const GemmTerm* term : live) all_dot = all_dot && term->b.trans;
  const int64_t units = (N + kUnit - 1) / kUnit;
  const int threads = ThreadPool::instance().size();
  // Dot products: many small tasks rather than one per thread; the pool hands them out as threads
  // come free, so a worker that wakes late or is preempted (a shared machine) holds up little.
  const int64_t by_work = threads > 1 ? std::max<int64_t>(1, work / kGrain) : 1;
  const int64_t cap = all_dot ? kMaxTasks : std::min<int64_t>(threads, std::max<int64_t>(1, N / kAxpyMinColumns));
  const int tasks = static_cast<int>(std::min<int64_t>({by_work, units, cap}));
  const int64_t chunk = rows_per_chunk(live);
  const int64_t block = block_columns(live, M, chunk);
  ThreadPool::instance().run(tasks, [&](int t) {
    const int64_t n0 = std::min(N, units * t / tasks * kUnit);
    const int64_t n1 = std::min(N, units * (t + 1) / tasks * kUnit);
    for (int64_t j0 = n0; j0 < n1; j0 += std::min(block, n1 - j0)) {
      const int64_t j1 = j0 + std::min(block, n1 - j0);
      for (size_t i = 0; i < live.size(); ++i)
        for (int64_t r0 = 0; r0 < M; r0 += chunk) {
          const int m = static_cast<int>(std::min<int64_t>(chunk, M - r0));
          run_term(spans, *live[i], rows[i], r0, m, j0, j1, c, ldc, accumulate || i > 0);
        }
    }
  });
}

}  // namespace peft::kernels::cpu
