'use strict';
// Finds a Python with PyTorch and runs torch_ref.py on a batch of cases (one process, since
// importing torch takes seconds). No torch: reported as "not installed", never fatal.
const path = require('node:path');
const { spawnSync } = require('node:child_process');

// $PYTHON first; Debian's python3-torch lives under /usr/bin/python3, which a pyenv or venv
// python3 earlier on PATH does not see.
function candidates() {
  return [...new Set([process.env.PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean))];
}

/** Returns { available: true, python } or { available: false, reason }. */
function findTorch() {
  for (const python of candidates()) {
    const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return { available: true, python };
  }
  return { available: false, reason: 'not installed (no python3 that can import torch)' };
}

/**
 * Times every case in one torch_ref.py run.
 * @param cases [{ id, a, b, transA, transB, dtype }] (stored operand shapes)
 * @returns { version, blas, threads, results: Map(id -> result) }
 */
function runTorch(python, cases, { threads, timing, maxRunSeconds }) {
  const job = JSON.stringify({ threads, timing, maxRunSeconds, cases });
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  const r = spawnSync(python, [path.join(__dirname, 'torch_ref.py')], {
    input: job,
    encoding: 'utf8',
    env,
    stdio: ['pipe', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  if (r.error || r.status !== 0) throw new Error(`torch_ref.py failed (${r.error ? r.error.message : `exit ${r.status}`})`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop());
  return { ...out, results: new Map(out.results.map((x) => [x.id, x])) };
}

module.exports = { findTorch, runTorch };
