// Resident memory across training steps: a step frees and reallocates megabytes of activations,
// logits blocks and gradients, from the pool and libuv threads. Kept on the malloc heap, glibc's
// per-thread arenas and its rising mmap threshold made resident memory climb step after step (by
// tens of MiB per step here, ~130 MiB per step at SmolLM's shapes) though nothing leaked; large
// blocks are now mapped and unmapped directly (native/core/host_memory.cpp).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { ensureBuilt } from '../helpers/built';
import { repoRoot } from '../helpers/workspace';

interface StepSample {
  step: number;
  loss: number;
  rss: number;
  peak: number;
}

const STEPS = 16;
const WARMUP = 4;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

beforeAll(() => ensureBuilt());

describe('resident memory over training steps', () => {
  it(`stays within 5% of its size after ${WARMUP} warm-up steps for ${STEPS} steps`, () => {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'step-memory-child.js')], {
      encoding: 'utf8',
      // One libuv thread: each thread that first runs a step keeps its GEMM panels and its own malloc
      // arena (a bounded ~10 MiB), and with four of them picked at random that one-time cost would land
      // after the warm-up by chance. What is measured is what a step leaves behind.
      env: { ...process.env, STEP_MEMORY_DIST: path.join(repoRoot, 'dist'), STEP_MEMORY_STEPS: String(STEPS), UV_THREADPOOL_SIZE: '1' },
      timeout: 240_000,
    });
    if (r.status !== 0) throw new Error(`step-memory-child failed (${r.status ?? r.signal}): ${r.stderr}`);
    const samples = r.stdout.trim().split('\n').map((line) => JSON.parse(line) as StepSample);
    expect(samples).toHaveLength(STEPS);
    // It trains: the loss falls.
    expect(samples[STEPS - 1].loss).toBeLessThan(samples[0].loss);
    const base = samples[WARMUP - 1];
    const after = samples.slice(WARMUP);
    const worst = Math.max(...after.map((s) => s.peak));
    const detail = samples.map((s) => `${s.step}: ${mib(s.rss)} (peak ${mib(s.peak)})`).join(', ');
    const limit = base.peak * 1.05;
    if (worst > limit) {
      throw new Error(`peak resident memory grew from ${mib(base.peak)} MiB after step ${WARMUP} to ${mib(worst)} MiB (limit ${mib(limit)}); MiB per step: ${detail}`);
    }
    expect(worst).toBeLessThanOrEqual(limit);
  });
});
