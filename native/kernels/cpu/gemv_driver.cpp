// The small-M GEMM path (gemv.h): stages the rows of A as f32 when needed, then splits the output
// columns over the pool; each task runs every term over its columns with the active GemvSpans.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/convert.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/variants.h"

namespace peft::kernels::cpu {

namespace {

// Default crossover: up to this M the unpacked loops beat packing (scripts/bench/gemv.js).
constexpr int64_t kDefaultMaxRows = 4;
// Weight elements per pool task: below about this much streaming, waking a thread costs more than
// it saves.
constexpr int64_t kGrain = 32 * 1024;
// Column split unit: whole 64-byte lines of each output row per task.
constexpr int64_t kUnit = 16;

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

// C[:, n0:n1] (+)= term, on the calling thread.
void run_term(const GemvSpans& spans, int m, const GemmTerm& term, const RowsOfA& x, int64_t n0, int64_t n1, float* c,
              int64_t ldc, bool accumulate) {
  const MatrixRef& b = term.b;
  const int64_t n = n1 - n0;
  float* y = c + n0;
  if (b.trans) {  // op(B)[p, j] = B[j, p]: rows n0.. of the stored B
    const int64_t offset = n0 * b.ld;
    if (b.dtype == DType::F32) {
      spans.dot_rows_f32(m, n, term.k, x.data, x.ld, static_cast<const float*>(b.data) + offset, b.ld, y, ldc,
                         term.alpha, accumulate);
    } else {
      spans.dot_rows_bf16(m, n, term.k, x.data, x.ld, static_cast<const uint16_t*>(b.data) + offset, b.ld, y, ldc,
                          term.alpha, accumulate);
    }
  } else {  // op(B)[p, j] = B[p, j]: columns n0.. of the stored B
    if (b.dtype == DType::F32) {
      spans.axpy_rows_f32(m, n, term.k, x.data, x.ld, static_cast<const float*>(b.data) + n0, b.ld, y, ldc, term.alpha,
                          accumulate);
    } else {
      spans.axpy_rows_bf16(m, n, term.k, x.data, x.ld, static_cast<const uint16_t*>(b.data) + n0, b.ld, y, ldc,
                           term.alpha, accumulate);
    }
  }
}

int64_t read_max_rows() {
  const char* env = std::getenv("PEFT_GEMV_MAX_ROWS");
  if (env == nullptr || *env == '\0') return kDefaultMaxRows;
  char* end = nullptr;
  const long value = std::strtol(env, &end, 10);
  if (end == env || *end != '\0' || value < 0) return kDefaultMaxRows;
  return std::min<int64_t>(value, kGemvMaxRows);
}

thread_local std::vector<float> t_staged;

}  // namespace

int64_t gemv_max_rows() {
  static const int64_t rows = read_max_rows();
  return rows;
}

void gemv_sum(int64_t M, int64_t N, const GemmTerm* terms, int n_terms, float* c, int64_t ldc, bool accumulate) {
  const GemvSpans& spans = active_gemv_spans();
  const int m = static_cast<int>(M);
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

  const int64_t units = (N + kUnit - 1) / kUnit;
  const int64_t by_work = std::max<int64_t>(1, work / kGrain);
  const int tasks = static_cast<int>(std::min<int64_t>({ThreadPool::instance().size(), by_work, units}));
  ThreadPool::instance().run(tasks, [&](int t) {
    const int64_t n0 = std::min(N, units * t / tasks * kUnit);
    const int64_t n1 = std::min(N, units * (t + 1) / tasks * kUnit);
    if (n0 >= n1) return;
    for (size_t i = 0; i < live.size(); ++i)
      run_term(spans, m, *live[i], rows[i], n0, n1, c, ldc, accumulate || i > 0);
  });
}

}  // namespace peft::kernels::cpu
