// No leaks: a child process (node --expose-gc, so that a full collection can be forced before each
// measurement) loads stories260K (its Hugging Face folder and its GGUF file in turn), wraps it with LoRA, trains 3 steps with the Trainer (checkpoint,
// run log and report included), generates, saves the adapter and disposes everything, 50 times.
// Resident memory must stay flat after warm-up, and the native tensor memory must go back to what
// it was, whether dispose() frees it or the garbage collector does.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { ensureBuilt } from '../helpers/built';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { repoRoot } from '../helpers/workspace';

interface Sample {
  i: number;
  rss: number;
  heapUsed: number;
  external: number;
  storages: number;
  bytes: number;
  views: number;
  ms: number;
  loss: number;
  tokens: number[];
}

function runChild(iterations: number, dispose: boolean): Sample[] {
  // A fixed young generation: V8 grows it with the allocation rate, which reads as resident memory
  // growing over the first rounds though nothing leaks (heap snapshots of rounds 10 and 50 differ
  // only by compiled code).
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-semi-space-size=1', path.join(__dirname, 'leak-child.js')], {
    encoding: 'utf8',
    env: {
      ...process.env,
      LEAK_DIST: path.join(repoRoot, 'dist'),
      LEAK_MODELS: [STORIES_HF_DIR, STORIES_GGUF].join(path.delimiter),
      LEAK_ITERATIONS: String(iterations),
      LEAK_DISPOSE: dispose ? '1' : '0',
    },
    timeout: 240_000,
  });
  if (r.status !== 0) throw new Error(`leak-child failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout.trim().split('\n').map((line) => JSON.parse(line) as Sample);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

beforeAll(() => ensureBuilt());

describe('50 rounds of load, LoRA, train, generate, save, dispose in one process', () => {
  it('keep resident memory flat and free every native tensor', () => {
    const samples = runChild(50, true);
    expect(samples).toHaveLength(50);
    // The same work every other round (the model alternates between its two files): the same last loss and tokens.
    for (const s of samples) {
      expect(s.loss).toBe(samples[s.i % 2].loss);
      expect(s.tokens).toEqual(samples[s.i % 2].tokens);
    }
    // Every tensor the round made is gone once it disposed of the model: nothing native stays alive.
    for (const s of samples) expect({ storages: s.storages, bytes: s.bytes, views: s.views }).toEqual({ storages: 0, bytes: 0, views: 0 });
    // What V8 is told about native memory comes back down too (a collected tensor once stayed counted).
    expect(Math.abs(samples[49].external - samples[10].external)).toBeLessThan(256 * 1024);

    const early = median(samples.slice(10, 16).map((s) => s.rss));
    const late = median(samples.slice(44, 50).map((s) => s.rss));
    const growth = late / early - 1;
    const perRound = samples.slice(10).reduce((a, s) => a + s.ms, 0) / 40;
    console.log(
      `RSS after rounds 10-15: ${mb(early)} MiB, after 45-50: ${mb(late)} MiB (${(growth * 100).toFixed(2)}%); ` +
        `heap ${mb(samples[10].heapUsed)} → ${mb(samples[49].heapUsed)} MiB; ${perRound.toFixed(0)} ms per round`,
    );
    expect(Math.abs(growth)).toBeLessThan(0.05);
  }, 300_000);

  it('free everything through the garbage collector alone when nothing is disposed', () => {
    const samples = runChild(15, false);
    for (const s of samples) expect({ storages: s.storages, bytes: s.bytes, views: s.views }).toEqual({ storages: 0, bytes: 0, views: 0 });
    expect(Math.abs(samples[14].external - samples[4].external)).toBeLessThan(256 * 1024);
    const early = median(samples.slice(4, 8).map((s) => s.rss));
    const late = median(samples.slice(11, 15).map((s) => s.rss));
    expect(Math.abs(late / early - 1)).toBeLessThan(0.05);
  }, 300_000);
});
