'use strict';
// Reference point 1: OpenBLAS's GEMM (Debian: libopenblas0-pthread + libopenblas-dev), timed by
// openblas.c on the same layouts as our calls. Absent library: reported, never fatal.
const path = require('node:path');
const { scratchDir, compile, runJson } = require('./toolchain');

/**
 * Builds the harness. Returns { available: false, reason } when OpenBLAS is not installed, else
 * { available: true, bf16, time(gemm, dtype, timing) }; bf16 says whether cblas_sbgemm links.
 */
function openblasReference(threads) {
  const source = path.join(__dirname, 'openblas.c');
  const bin = path.join(scratchDir(), 'openblas-ref');
  const build = (extra) => compile('gcc', ['-O2', '-std=c11', ...extra, source, '-o', bin, '-lopenblas']);
  let bf16 = true;
  let c = build(['-DWITH_SBGEMM']);
  if (!c.ok) {
    bf16 = false;
    c = build([]);
  }
  if (!c.ok) {
    let why = c.output.split('\n').find((l) => /error/.test(l)) || c.output;
    if (/cblas\.h/.test(c.output)) why = 'cblas.h not found';
    else if (/-lopenblas/.test(c.output)) why = 'libopenblas not found';
    return { available: false, reason: `not installed (${why.trim()}; Debian: apt-get install libopenblas0-pthread libopenblas-dev)` };
  }
  // Same thread count as ours: one per physical core.
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
  return {
    available: true,
    bf16,
    /** gemm: { m, n, k, transA, transB } as passed to ops.matmul; timing: { minReps, maxReps, budget }. */
    time(gemm, dtype, timing) {
      if (dtype === 'bf16' && !bf16) return null;
      const args = [gemm.transA ? 1 : 0, gemm.transB ? 1 : 0, gemm.m, gemm.n, gemm.k, dtype, timing.minReps, timing.maxReps, timing.budget];
      return runJson(bin, args.map(String), { env });
    },
  };
}

module.exports = { openblasReference };
