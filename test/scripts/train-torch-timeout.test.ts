/**
 * bench:train's PyTorch runs under --torch-timeout (scripts/bench/train-torch.js): a reference that
 * runs past the limit is stopped and reported as stopped, and the summary keeps that (train-report.js).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const torch = require('../../scripts/bench/train-torch.js') as {
  runTorch(python: string, job: Record<string, unknown>): { error?: string; stopped?: boolean };
};
const report = require('../../scripts/bench/train-report.js') as {
  summarize(c: unknown, ours: unknown[], torch: Record<string, unknown[]>, peaks: unknown): { torch: Record<string, { error?: string; stopped?: boolean }> };
};

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-torch-timeout-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// A stand-in interpreter: `sleeper` never answers, `failing` exits with an error.
function script(name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}
const job = { c: { id: 'lora-qv' }, mode: 'fp32', model: '/nonexistent', threads: 1, warmup: 1, steps: 1 };

it('stops a reference that runs past the limit and says so', () => {
  const started = Date.now();
  const r = torch.runTorch(script('sleeper', 'sleep 30'), { ...job, timeoutS: 1 });
  expect(Date.now() - started).toBeLessThan(15_000);
  expect(r).toEqual({ error: 'stopped after 1 s', stopped: true });
  const s = report.summarize({ id: 'lora-qv', title: 'LoRA r8 q,v', method: 'lora', targets: ['q_proj', 'v_proj'], r: 8 },
    [{ error: 'not run' }], { fp32: [r] }, { f32: 100, bf16: 100 });
  expect(s.torch.fp32).toMatchObject({ error: 'stopped after 1 s', stopped: true });
});

it('reports a reference that fails within the limit as failed, not stopped', () => {
  const r = torch.runTorch(script('failing', 'echo boom >&2; exit 3'), { ...job, timeoutS: 10 });
  expect(r.stopped).toBeUndefined();
  expect(r.error).toMatch(/exit 3: boom/);
});

it('reports the exit status of a reference that dies before reading its input (EPIPE on our side)', () => {
  const r = torch.runTorch(script('early', 'exec 0<&-; sleep 0.3; echo early >&2; exit 4'), { ...job, timeoutS: 10 });
  expect(r.stopped).toBeUndefined();
  expect(r.error).toMatch(/^exit 4: early/);
});
