import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { readRunLog } from '../lib/train/run-log';
import { ensureBuilt } from './helpers/built';

it('npm run demo fine-tunes LoRA on stories260K, lowers the held-out perplexity and writes the adapter, log and report', () => {
  ensureBuilt();
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-demo-'));
  try {
    const stdout = execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'demo.js'), '--output-dir', out], { encoding: 'utf8' });
    const [before, after] = [...stdout.matchAll(/held-out perplexity ([\d.]+)/g)].map((m) => Number(m[1]));
    expect(before).toBeGreaterThan(0);
    expect(after).toBeLessThan(before * 0.8);
    const first = Number(/^step 1\/40 \(2%\) {2}loss ([\d.]+)/m.exec(stdout)![1]);
    const last = Number(/^ {2}final train loss +([\d.]+)$/m.exec(stdout)![1]);
    expect(last).toBeLessThan(first / 2);
    // The log has every step and the evaluations; the report draws them.
    const records = readRunLog(path.join(out, 'run.jsonl'));
    expect(records.filter((r) => r.event === 'step')).toHaveLength(40);
    const evals = records.filter((r) => r.event === 'eval') as Array<{ step: number; perplexity: number }>;
    expect(evals.map((e) => e.step)).toEqual([0, 10, 20, 30, 40]);
    // The adapter kept is the best evaluation's.
    expect(Math.min(...evals.map((e) => e.perplexity))).toBeCloseTo(after, 1);
    const adapter = JSON.parse(fs.readFileSync(path.join(out, 'adapter', 'adapter_config.json'), 'utf8'));
    expect(adapter).toMatchObject({ peft_type: 'LORA', r: 8, target_modules: 'all-linear' });
    expect(fs.existsSync(path.join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
    const report = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(report).toContain('data-series="train loss"');
    expect(report).toContain('data-series="eval loss"');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
