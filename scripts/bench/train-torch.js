'use strict';
// The PyTorch reference of the training benchmark: train_ref.py, one (case, mode) per process so
// that each peak RSS is its own. Modes: fp32, and bf16 autocast (torch.autocast('cpu', bfloat16)).
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const { SHAPE, RUN, LR, tokenIds } = require('./train-model');

const MODES = ['fp32', 'bf16'];

/**
 * Runs one case in one mode; returns train_ref.py's JSON (or { error }).
 * @param python an interpreter that imports torch (torch_ref.js findTorch)
 * @param timeoutS  stop the process after this many seconds (0: never); the result is then
 *   { error: 'stopped after S s', stopped: true }
 */
function runTorch(python, { c, mode, model, threads, warmup, steps, timeoutS = 0 }) {
  const job = {
    case: c, mode, threads, weights: path.join(model, 'model.safetensors'), shape: SHAPE, ids: tokenIds(), warmup, steps, lr: LR,
    checkpointing: RUN.checkpointing,
  };
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const r = spawnSync(python, [path.join(__dirname, 'train_ref.py')], {
    input: JSON.stringify(job), encoding: 'utf8', env, maxBuffer: 1 << 24, stdio: ['pipe', 'pipe', 'pipe'],
    ...(timeoutS > 0 ? { timeout: timeoutS * 1000, killSignal: 'SIGKILL' } : {}),
  });
  if (timeoutS > 0 && r.error && r.error.code === 'ETIMEDOUT') return { error: `stopped after ${timeoutS} s`, stopped: true };
  // A process that dies before reading its input also raises EPIPE; its exit status says more.
  const why = typeof r.status === 'number' && r.status !== 0 ? `exit ${r.status}` : r.error ? r.error.message : '';
  if (why) return { error: `${why}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}` };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

module.exports = { MODES, runTorch };
