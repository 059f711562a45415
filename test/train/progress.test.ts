import { printSummary, TrainingProgress } from '../../lib/train/progress';
import { summarizeRun } from '../../lib/train/run-summary';
import type { RunRecord } from '../../lib/train/run-log';

/** A stream that records what was written; a terminal if asked. */
function sink(tty: boolean) {
  const chunks: string[] = [];
  return { chunks, text: () => chunks.join(''), write: (c: string) => (chunks.push(c), true), isTTY: tty, columns: 160 };
}

// Escape sequences of a terminal (cursor moves, line clears) removed.
const plain = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

describe('training progress', () => {
  it('prints plain lines at most every intervalS seconds when the output is not a terminal', () => {
    const out = sink(false);
    let now = 0;
    const p = new TrainingProgress({ total: 100, stream: out, clock: () => now, memory: () => 123_400_000, intervalS: 10 });
    p.start();
    for (let step = 1; step <= 100; step++) {
      now += 1000; // 1 s per step
      p.update({ step, loss: 5 / step, lr: 2e-4, tokens_per_s: 1500.4 });
      if (step === 50) p.log('eval loss 1.2345');
    }
    p.stop();
    const lines = out.text().trimEnd().split('\n');
    expect(out.text()).not.toContain('\x1b');
    // Step 1, then every 10 s (steps 11, 21, ...), the eval line, and the last step.
    const steps = lines.filter((l) => l.startsWith('step ')).map((l) => Number(/^step (\d+)\//.exec(l)![1]));
    expect(steps).toEqual([1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100]);
    expect(lines).toContain('eval loss 1.2345');
    // ETA from the mean pace: after 11 steps in 11 s, 89 steps are left.
    expect(lines.find((l) => l.startsWith('step 11/'))).toBe('step 11/100 (11%)  loss 0.4545  lr 2.00e-4  1500 tok/s  ETA 1 min 29 s  RSS 123.4 MB');
    expect(lines[lines.length - 1]).toBe('step 100/100 (100%)  loss 0.0500  lr 2.00e-4  1500 tok/s  ETA 0.0 s  RSS 123.4 MB');
  });

  it('draws a live bar on a terminal, with an eval line printed above it', () => {
    const out = sink(true);
    let now = 0;
    const p = new TrainingProgress({ total: 40, stream: out, clock: () => now, memory: () => 2_500_000 });
    p.start(10); // resumed at step 10: the pace counts from here (10 steps in 3 s, 20 left: 6 s)
    now += 3000;
    p.update({ step: 20, loss: 1.5, lr: 1e-3, tokens_per_s: 99 });
    p.log('eval loss 1.4000');
    p.stop();
    const screen = plain(out.text());
    expect(screen).toContain('20/40 | loss 1.5000 | lr 1.00e-3 | grad - | 99 tok/s | ETA 6.0 s | RSS 2.5 MB');
    expect(screen).toContain('eval loss 1.4000\n');
    expect(out.text()).toContain('\x1b'); // it did move the cursor
  });

  it('rejects a total that is not a positive integer', () => {
    expect(() => new TrainingProgress({ total: 0 })).toThrow(expect.objectContaining({ code: 'E_RANGE', message: expect.stringContaining('for total') }));
    expect(() => new TrainingProgress({ total: 2.5 })).toThrow(expect.objectContaining({ code: 'E_ARGUMENT' }));
    expect(() => new TrainingProgress({ total: 5, intervalS: -1 })).toThrow(expect.objectContaining({ code: 'E_RANGE' }));
  });

  it('prints a summary of the run', () => {
    const records = [
      { event: 'start', config: {}, time: 0 },
      { event: 'step', step: 1, loss: 3, lr: 1, grad_norm: 1, tokens_per_s: 100, memory: 10e6, time: 1000 },
      { event: 'eval', step: 1, eval_loss: 2.5, perplexity: Math.exp(2.5), time: 1500 },
      { event: 'step', step: 2, loss: 2, lr: 1, grad_norm: 1, tokens_per_s: 300, memory: 30e6, time: 2000 },
      { event: 'eval', step: 2, eval_loss: 2.75, perplexity: Math.exp(2.75), time: 2500 },
      { event: 'end', step: 2, reason: 'early_stopping', time: 90_000 },
    ] as RunRecord[];
    const out = sink(false);
    printSummary(summarizeRun(records), out, { report: 'out/report.html' });
    expect(out.text()).toBe(
      [
        'Training finished (early stopping): 2 steps in 1 min 30 s',
        '  final train loss       2.0000',
        `  final eval loss        2.7500 (perplexity ${Number(Math.exp(2.75).toPrecision(5))}) at step 2`,
        `  best eval loss         2.5000 (perplexity ${Number(Math.exp(2.5).toPrecision(5))}) at step 1`,
        '  largest gradient norm  1 at step 1 (before clipping)',
        '  tokens per second      200',
        '  peak memory (RSS)      30.0 MB',
        '  report                 out/report.html',
        '',
      ].join('\n'),
    );
  });
});
