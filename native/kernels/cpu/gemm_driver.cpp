// The cache-blocked GEMM driver (Goto/BLIS loop order): for each N block, for each K block, pack a
// panel of B; for each M block, pack a panel of A and run the register tile over it. The output is
// split into a grid of blocks, one per pool thread, each packing its own panels (no barriers).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/host_memory.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gemm_pack.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/variants.h"
#include "kernels/gemm.h"

namespace peft::kernels {

namespace {

using cpu::GemmMicroKernel;

// A per-thread scratch buffer for packed panels; grows and is reused across calls.
class PanelBuffer {
 public:
  ~PanelBuffer() { std::free(data_); }
  void* get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, size_);
      if (data_ == nullptr) {
        size_ = 0;
        throw Error(ErrorCode::Memory, "Could not allocate " + std::to_string(bytes) + " bytes of GEMM panels");
      }
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

thread_local PanelBuffer t_a_panel;
thread_local PanelBuffer t_b_panel;

struct GemmProblem {
  int64_t m, n;
  const GemmTerm* terms;
  int n_terms;
  float* c;
  int64_t ldc;
  bool accumulate;
};

// Buffers and register-tile loops for one thread's block of C.
struct BlockContext {
  const GemmMicroKernel& kern;
  const GemmProblem& p;
  char* a_panel;
  char* b_panel;
  size_t elem;  // bytes per packed element
};

// C[m0:m1, jc:jc+nc] (+)= term over K block [pc, pc+kc): pack B once, then A block by block.
void run_k_block(const BlockContext& ctx, const GemmTerm& term, int64_t m0, int64_t m1, int64_t jc, int64_t nc,
                 int64_t pc, int64_t kc, bool accumulate) {
  const GemmMicroKernel& kern = ctx.kern;
  const GemmProblem& p = ctx.p;
  const int64_t kp = cpu::padded_k(kern, kc);
  alignas(64) float edge[32 * 32];  // one register tile (mr, nr <= 32)
  cpu::pack_b(kern, term.b, pc, kc, jc, nc, ctx.b_panel);
  // One B sliver wide: each A value is used once, so the tile reads A where it lies (f32, whole
  // row tiles; a partial last tile is packed alone).
  const bool a_direct = kern.tile_a_direct != nullptr && !kern.bf16_panels && term.a.dtype == DType::F32 && nc <= kern.nr;
  const int64_t a_row_stride = term.a.trans ? 1 : term.a.ld, a_k_stride = term.a.trans ? term.a.ld : 1;
  for (int64_t ic = m0; ic < m1; ic += kern.mc) {
    const int64_t mc = std::min<int64_t>(kern.mc, m1 - ic);
    if (!a_direct) cpu::pack_a(kern, term.a, ic, mc, pc, kc, ctx.a_panel);
    for (int64_t jr = 0; jr < nc; jr += kern.nr) {
      const int64_t nr = std::min<int64_t>(kern.nr, nc - jr);
      const char* b_sliver = ctx.b_panel + ctx.elem * kp * jr;
      for (int64_t ir = 0; ir < mc; ir += kern.mr) {
        const int64_t mr = std::min<int64_t>(kern.mr, mc - ir);
        const bool full = mr == kern.mr && nr == kern.nr;
        float* c = p.c + (ic + ir) * p.ldc + jc + jr;
        float* out = full ? c : edge;  // edge tile: compute the full tile aside, copy the valid part
        const int64_t ld_out = full ? p.ldc : kern.nr;
        const bool acc = full && accumulate;
        if (a_direct && mr == kern.mr) {
          const float* a = static_cast<const float*>(term.a.data) + (ic + ir) * a_row_stride + pc * a_k_stride;
          kern.tile_a_direct(kc, a, a_row_stride, a_k_stride, b_sliver, out, ld_out, term.alpha, acc);
        } else {
          const char* a_sliver = ctx.a_panel + ctx.elem * kp * ir;
          if (a_direct) {
            cpu::pack_a(kern, term.a, ic + ir, mr, pc, kc, ctx.a_panel);
            a_sliver = ctx.a_panel;
          }
          kern.tile(kp / kern.k_group, a_sliver, b_sliver, out, ld_out, term.alpha, acc);
        }
        if (!full) {
          for (int64_t i = 0; i < mr; ++i) {
            float* row = c + i * p.ldc;
            const float* src = edge + i * kern.nr;
            for (int64_t j = 0; j < nr; ++j) row[j] = src[j] + (accumulate ? row[j] : 0.0f);
          }
        }
      }
    }
  }
}

// C[m0:m1, n0:n1] for every term and the whole K, on the calling thread.
void gemm_block(const GemmMicroKernel& kern, const GemmProblem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const size_t elem = kern.bf16_panels ? 2 : 4;
  int64_t k_longest = 0;
  for (int t = 0; t < p.n_terms; ++t) k_longest = std::max(k_longest, p.terms[t].k);
  const int64_t kc_max = std::min<int64_t>(kern.kc, cpu::padded_k(kern, k_longest));
  const int64_t mc_max = std::min<int64_t>(kern.mc, (m1 - m0 + kern.mr - 1) / kern.mr * kern.mr);
  const int64_t nc_max = std::min<int64_t>(kern.nc, (n1 - n0 + kern.nr - 1) / kern.nr * kern.nr);
  const BlockContext ctx{kern, p, static_cast<char*>(t_a_panel.get(elem * kc_max * mc_max)),
                         static_cast<char*>(t_b_panel.get(elem * kc_max * nc_max)), elem};

  for (int64_t jc = n0; jc < n1; jc += kern.nc) {
    const int64_t nc = std::min<int64_t>(kern.nc, n1 - jc);
    bool first_block = true;
    for (int t = 0; t < p.n_terms; ++t) {
      // Even K blocks (576 -> 2 x 288, not 256 + 256 + 64): as few passes over C as kc allows,
      // none of them nearly empty.
      const int64_t k = p.terms[t].k;
      const int64_t blocks = (k + kern.kc - 1) / kern.kc;
      const int64_t step = blocks ? cpu::padded_k(kern, (k + blocks - 1) / blocks) : 0;
      for (int64_t pc = 0; pc < k; pc += step) {
        const int64_t kc = std::min<int64_t>(step, k - pc);
        run_k_block(ctx, p.terms[t], m0, m1, jc, nc, pc, kc, p.accumulate || !first_block);
        first_block = false;
      }
    }
    if (first_block && !p.accumulate) {  // every term had K = 0: the sum is empty
      for (int64_t i = m0; i < m1; ++i) std::memset(p.c + i * p.ldc + jc, 0, sizeof(float) * nc);
    }
  }
}

// One task's share of C.
struct Block {
  int64_t m0, m1, n0, n1;
};

// The output split into tasks for the pool: rows into tm parts and columns into tn, tm·tn = threads,
// the split that repacks least ((M/tm)·K·tn + (N/tn)·K·tm: each block packs its own panels). A
// part wider than one N block (nc) is cut further at N-block boundaries: B is packed per N block
// anyway and A is packed again for each, so these tasks cost nothing extra, and a thread that
// finishes early takes the next (a statically split head product waited on the slower core).
std::vector<Block> task_blocks(const GemmMicroKernel& kern, int64_t M, int64_t N, int threads) {
  int best_tm = 1;
  double best_cost = -1;
  for (int tm = 1; tm <= threads; ++tm) {
    if (threads % tm) continue;
    const int tn = threads / tm;
    if (tm > (M + kern.mr - 1) / kern.mr || tn > (N + kern.nr - 1) / kern.nr) continue;
    const double cost = static_cast<double>(M) * tn + static_cast<double>(N) * tm;
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best_tm = tm;
    }
  }
  const int tm = best_cost < 0 ? 1 : best_tm;
  const int tn = best_cost < 0 ? 1 : threads / tm;
  // Split boundaries on whole register tiles.
  auto bound = [](int64_t total, int parts, int part, int unit) {
    const int64_t units = (total + unit - 1) / unit;
    return std::min<int64_t>(total, units * part / parts * unit);
  };
  std::vector<Block> blocks;
  const bool cut_columns = tn > 1 && N / tn > kern.nc;
  for (int bi = 0; bi < tm; ++bi) {
    const int64_t m0 = bound(M, tm, bi, kern.mr), m1 = bound(M, tm, bi + 1, kern.mr);
    if (m0 >= m1) continue;
    if (cut_columns) {
      for (int64_t n0 = 0; n0 < N; n0 += kern.nc) blocks.push_back({m0, m1, n0, std::min<int64_t>(N, n0 + kern.nc)});
      continue;
    }
    for (int bj = 0; bj < tn; ++bj) {
      const int64_t n0 = bound(N, tn, bj, kern.nr), n1 = bound(N, tn, bj + 1, kern.nr);
      if (n0 < n1) blocks.push_back({m0, m1, n0, n1});
    }
  }
  return blocks;
}

// K chunks for a product whose K is far longer than its output is wide (the output head's
// dx = dlogits·W: 341 x 576 over K = 49,152). Split over M or N, each thread would pack the whole
// of the other operand; split over K, every element is packed once and the chunks' partial sums
// are added at the end. Depends on the shape only, never on the thread count, so the sum's order
// and its rounding are the same on any machine.
constexpr int64_t kChunkK = 4096;
int64_t k_chunks(int64_t M, int64_t N, const GemmTerm* terms, int n_terms) {
  if (n_terms != 1) return 1;
  const int64_t K = terms[0].k;
  if (K < 4 * kChunkK || K < 16 * std::max(M, N)) return 1;
  return std::min<int64_t>(16, K / kChunkK);
}

// op(x) restricted to K in [k0, ...): `is_a` says whether x is the left operand (op(A) is [M, K],
// op(B) is [K, N]).
MatrixRef k_offset(const MatrixRef& x, bool is_a, int64_t k0) {
  const bool k_is_column = is_a != x.trans;  // K runs along the stored rows
  const int64_t offset = k_is_column ? k0 : k0 * x.ld;
  MatrixRef out = x;
  out.data = static_cast<const char*>(x.data) + offset * static_cast<int64_t>(dtype_size(x.dtype));
  return out;
}

// Each chunk's partial product into its own buffer (tasks: chunks x the thread grid), then
// C (+)= Σ partials in chunk order, row by row.
void gemm_split_k(const GemmMicroKernel& kern, int64_t M, int64_t N, const GemmTerm& term, int64_t chunks,
                  int threads, float* c, int64_t ldc, bool accumulate) {
  const size_t plane = static_cast<size_t>(M * N);
  HostBuffer partials(sizeof(float) * plane * static_cast<size_t>(chunks));
  float* part = static_cast<float*>(partials.data());
  std::vector<GemmTerm> sub(static_cast<size_t>(chunks));
  std::vector<GemmProblem> problems;
  problems.reserve(static_cast<size_t>(chunks));
  const int64_t step = (term.k + chunks - 1) / chunks;
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t k0 = i * step;
    sub[static_cast<size_t>(i)] = {k_offset(term.a, true, k0), k_offset(term.b, false, k0),
                                   std::max<int64_t>(0, std::min(step, term.k - k0)), term.alpha};
    problems.push_back({M, N, &sub[static_cast<size_t>(i)], 1, part + plane * static_cast<size_t>(i), N, false});
  }
  const std::vector<Block> grid = task_blocks(kern, M, N, std::max(1, threads / static_cast<int>(chunks)));
  const int tasks = static_cast<int>(chunks * static_cast<int64_t>(grid.size()));
  ThreadPool::instance().run(tasks, [&](int t) {
    const GemmProblem& p = problems[static_cast<size_t>(t) / grid.size()];
    const Block& b = grid[static_cast<size_t>(t) % grid.size()];
    gemm_block(kern, p, b.m0, b.m1, b.n0, b.n1);
  });
  parallel_for(M, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* row = c + i * ldc;
      if (!accumulate) std::memset(row, 0, sizeof(float) * static_cast<size_t>(N));
      for (int64_t ch = 0; ch < chunks; ++ch) {
        const float* src = part + plane * static_cast<size_t>(ch) + static_cast<size_t>(i * N);
        for (int64_t j = 0; j < N; ++j) row[j] += src[j];
      }
    }
  });
}

void check_operand(const MatrixRef& x, const char* name, int64_t rows, int64_t cols) {
  PEFT_CHECK(x.dtype == DType::F32 || x.dtype == DType::BF16, ErrorCode::DType,
             std::string("Expected f32 or bf16 for GEMM operand ") + name + " but received " + dtype_name(x.dtype));
  // Stored shape: [rows, cols] when not transposed, [cols, rows] when transposed.
  const int64_t stored_cols = x.trans ? rows : cols;
  PEFT_CHECK(x.ld >= stored_cols, ErrorCode::Shape,
             std::string("Expected a leading dimension of at least ") + std::to_string(stored_cols) +
                 " for GEMM operand " + name + " but received " + std::to_string(x.ld));
  PEFT_CHECK(x.data != nullptr || rows == 0 || cols == 0, ErrorCode::Argument,
             std::string("GEMM operand ") + name + " has no data");
}

}  // namespace

void gemm_sum(int64_t M, int64_t N, const GemmTerm* terms, int n_terms, float* c, int64_t ldc, bool accumulate) {
  PEFT_CHECK(M >= 0 && N >= 0, ErrorCode::Shape,
             "Expected non-negative GEMM sizes but received M=" + std::to_string(M) + " N=" + std::to_string(N));
  PEFT_CHECK(ldc >= N, ErrorCode::Shape,
             "Expected a leading dimension of at least " + std::to_string(N) + " for GEMM output but received " +
                 std::to_string(ldc));
  bool all_bf16 = true;
  double flops = 0;
  for (int t = 0; t < n_terms; ++t) {
    PEFT_CHECK(terms[t].k >= 0, ErrorCode::Shape, "Expected a non-negative GEMM size but received K=" + std::to_string(terms[t].k));
    check_operand(terms[t].a, "A", M, terms[t].k);
    check_operand(terms[t].b, "B", terms[t].k, N);
    all_bf16 = all_bf16 && terms[t].a.dtype == DType::BF16 && terms[t].b.dtype == DType::BF16;
    flops += 2.0 * M * N * terms[t].k;
  }
  if (M == 0 || N == 0) return;
  if (cpu::gemv_applies(M, terms, n_terms)) {  // a few rows: stream B once instead of packing it (gemv.h)
    cpu::gemv_sum(M, N, terms, n_terms, c, ldc, accumulate);
    return;
  }

  const cpu::GemmMicroKernel* bf16_kernel = cpu::active_gemm_kernel_bf16();
  const GemmMicroKernel& kern = (all_bf16 && bf16_kernel) ? *bf16_kernel : cpu::active_gemm_kernel_f32();
  int threads = ThreadPool::instance().size();
  if (flops < 2.0 * 64 * 64 * 64) threads = 1;
  const int64_t chunks = k_chunks(M, N, terms, n_terms);
  if (chunks > 1) {
    gemm_split_k(kern, M, N, terms[0], chunks, threads, c, ldc, accumulate);
    return;
  }
  const GemmProblem problem{M, N, terms, n_terms, c, ldc, accumulate};
  const std::vector<Block> blocks = task_blocks(kern, M, N, threads);
  ThreadPool::instance().run(static_cast<int>(blocks.size()), [&](int t) {
    const Block& b = blocks[static_cast<size_t>(t)];
    gemm_block(kern, problem, b.m0, b.m1, b.n0, b.n1);
  });
}

void gemm(int64_t M, int64_t N, int64_t K, const MatrixRef& a, const MatrixRef& b, float* c, int64_t ldc,
          float alpha, bool accumulate) {
  const GemmTerm term{a, b, K, alpha};
  gemm_sum(M, N, &term, 1, c, ldc, accumulate);
}

}  // namespace peft::kernels
