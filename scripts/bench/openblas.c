/* Times OpenBLAS's GEMM on one product, with the same operand layouts as our ops.matmul call:
 *
 *   openblas <ta 0|1> <tb 0|1> <M> <N> <K> <f32|bf16> <minReps> <maxReps> <budgetSeconds>
 *
 * C[M,N] = op(A)·op(B), row-major; A is stored [M,K] ([K,M] when ta), B [K,N] ([N,K] when tb).
 * f32 uses cblas_sgemm; bf16 uses cblas_sbgemm, compiled in only with -DWITH_SBGEMM (many builds,
 * Debian's included, declare it but do not export it). One warm-up call, then enough timed calls to
 * fill the budget (within minReps..maxReps); prints the median as one JSON line. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c11 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* Values in [-0.5, 0.5): the data does not change the speed, but NaNs or denormals could. */
static void fill_f32(float* p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
  }
}

#ifdef WITH_SBGEMM
static void to_bf16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    memcpy(&bits, &src[i], 4);
    dst[i] = (uint16_t)(bits >> 16); /* truncation is fine for timing */
  }
}
#endif

typedef struct {
  int ta, tb, m, n, k, bf16;
  const void *a, *b;
  float* c;
} Problem;

static void run(const Problem* p) {
  const enum CBLAS_TRANSPOSE ta = p->ta ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE tb = p->tb ? CblasTrans : CblasNoTrans;
  const int lda = p->ta ? p->m : p->k, ldb = p->tb ? p->k : p->n;
#ifdef WITH_SBGEMM
  if (p->bf16) {
    cblas_sbgemm(CblasRowMajor, ta, tb, p->m, p->n, p->k, 1.0f, p->a, lda, p->b, ldb, 0.0f, p->c, p->n);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, ta, tb, p->m, p->n, p->k, 1.0f, p->a, lda, p->b, ldb, 0.0f, p->c, p->n);
}

int main(int argc, char** argv) {
  if (argc != 10) {
    fprintf(stderr, "usage: %s ta tb M N K f32|bf16 minReps maxReps budgetSeconds\n", argv[0]);
    return 2;
  }
  Problem p = {atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
               strcmp(argv[6], "bf16") == 0, NULL, NULL, NULL};
  const int min_reps = atoi(argv[7]), max_reps = atoi(argv[8]);
  const double budget = atof(argv[9]);
#ifndef WITH_SBGEMM
  if (p.bf16) {
    fprintf(stderr, "this OpenBLAS has no cblas_sbgemm\n");
    return 3;
  }
#endif
  const size_t na = (size_t)p.m * p.k, nb = (size_t)p.k * p.n, nc = (size_t)p.m * p.n;
  float* a = malloc(na * 4);
  float* b = malloc(nb * 4);
  p.c = malloc(nc * 4);
  if (!a || !b || !p.c) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  fill_f32(a, na, 1);
  fill_f32(b, nb, 2);
  p.a = a;
  p.b = b;
#ifdef WITH_SBGEMM
  if (p.bf16) { /* the f32 buffers are large enough to hold their bf16 copies in place */
    to_bf16(a, (uint16_t*)a, na);
    to_bf16(b, (uint16_t*)b, nb);
  }
#endif

  double t0 = now();
  run(&p); /* warm-up: thread start, page faults, caches */
  const double first = now() - t0;
  int reps = first > 0 ? (int)(budget / first) : max_reps;
  if (reps < min_reps) reps = min_reps;
  if (reps > max_reps) reps = max_reps;
  double* times = malloc(sizeof(double) * reps);
  for (int i = 0; i < reps; ++i) {
    t0 = now();
    run(&p);
    times[i] = now() - t0;
  }
  qsort(times, reps, sizeof(double), cmp_double);
  const double median = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
  printf("{\"gflops\":%.2f,\"median\":%.6f,\"reps\":%d,\"threads\":%d,\"core\":\"%s\"}\n",
         2.0 * p.m * p.n * p.k / median / 1e9, median, reps, openblas_get_num_threads(), openblas_get_corename());
  free(times);
  free(a);
  free(b);
  free(p.c);
  return 0;
}
