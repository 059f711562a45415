import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { readRunLog, RunLog } from '../../lib/train/run-log';
import { ensureBuilt } from '../helpers/built';
import { repoRoot } from '../helpers/workspace';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-runlog-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('run log', () => {
  it('writes one JSON object per line with the time, and reads them back', () => {
    let now = 1000;
    const file = path.join(dir, 'run.jsonl');
    const log = RunLog.open(file, { clock: () => (now += 500) });
    log.write({ event: 'start', config: { learning_rate: 1e-4, peft: { r: 8 } }, total_steps: 2 });
    log.write({ event: 'step', step: 1, loss: 2.5, lr: 1e-4, grad_norm: 0.75, tokens_per_s: 1200, memory: 123456 });
    log.write({ event: 'eval', step: 1, eval_loss: 2.25, perplexity: Math.exp(2.25) });
    log.write({ event: 'save', step: 1, path: 'out/checkpoint-1' });
    log.write({ event: 'end', step: 1, reason: 'completed', metrics: { final_loss: 2.5 } });
    log.close();
    log.close(); // twice is fine

    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[5]).toBe('');
    expect(JSON.parse(lines[1])).toEqual({ event: 'step', step: 1, loss: 2.5, lr: 1e-4, grad_norm: 0.75, tokens_per_s: 1200, memory: 123456, time: 2000 });
    const records = readRunLog(file);
    expect(records.map((r) => r.event)).toEqual(['start', 'step', 'eval', 'save', 'end']);
    expect(records.map((r) => r.time)).toEqual([1500, 2000, 2500, 3000, 3500]);
    expect(() => log.write({ event: 'save', step: 2, path: 'x' })).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }));
    const other = RunLog.open(path.join(dir, 'other.jsonl'));
    expect(() => other.write({ event: 'stepp' } as never)).toThrow(
      expect.objectContaining({ code: 'E_ARGUMENT', message: 'Expected an object whose "event" is one of start, step, eval, save, warning, end for event but received an object (Object)' }),
    );
    other.close();
  });

  it('appends to an existing log, so a resumed run continues it', () => {
    const file = path.join(dir, 'run.jsonl');
    const a = RunLog.open(file);
    a.write({ event: 'step', step: 1, loss: 1, lr: 0, grad_norm: 0, tokens_per_s: 0, memory: 0 });
    a.close();
    const b = RunLog.open(file);
    b.write({ event: 'step', step: 2, loss: 1, lr: 0, grad_norm: 0, tokens_per_s: 0, memory: 0 });
    b.close();
    expect(readRunLog(file).map((r) => (r as { step: number }).step)).toEqual([1, 2]);
  });

  it('keeps every line written before the process was killed', () => {
    ensureBuilt();
    const file = path.join(dir, 'killed.jsonl');
    const script = `
      const { RunLog } = require(${JSON.stringify(path.join(repoRoot, 'dist', 'train', 'run-log.js'))});
      const log = RunLog.open(${JSON.stringify(file)});
      for (let step = 1; step <= 25; step++) log.write({ event: 'step', step, loss: 3 / step, lr: 1e-3, grad_norm: 1, tokens_per_s: 10, memory: 1 });
      process.kill(process.pid, 'SIGKILL');
    `;
    const result = spawnSync(process.execPath, ['-e', script]);
    expect(result.signal).toBe('SIGKILL');
    const records = readRunLog(file);
    expect(records).toHaveLength(25);
    expect(records.map((r) => (r as { loss: number }).loss)).toEqual(Array.from({ length: 25 }, (_, i) => 3 / (i + 1)));
  });

  it('skips a last line cut short, and names the line of a broken one', () => {
    const file = path.join(dir, 'cut.jsonl');
    fs.writeFileSync(file, '{"event":"step","step":1,"time":1}\n{"event":"step","st');
    expect(readRunLog(file)).toEqual([{ event: 'step', step: 1, time: 1 }]);
    fs.writeFileSync(file, '{"event":"step","step":1,"time":1}\nnot json\n{"event":"end","time":2}\n');
    expect(() => readRunLog(file)).toThrow(expect.objectContaining({ code: 'E_FORMAT', message: expect.stringContaining(`${file}:2 is not JSON`) }));
    fs.writeFileSync(file, '[1,2]\n');
    expect(() => readRunLog(file)).toThrow(expect.objectContaining({ code: 'E_FORMAT', message: expect.stringContaining(`${file}:1 is not a run-log record`) }));
    expect(() => readRunLog(path.join(dir, 'missing.jsonl'))).toThrow(expect.objectContaining({ code: 'E_IO' }));
    expect(() => RunLog.open(path.join(dir, 'no', 'such', 'dir.jsonl'))).toThrow(expect.objectContaining({ code: 'E_IO' }));
  });
});
