/**
 * What a person watches during training: a live bar (cli-progress) with step, loss, learning rate,
 * gradient norm (and whether it was clipped), tokens per second, ETA and resident memory when the output is a terminal; plain lines every few
 * seconds when it is a file or a pipe (CI logs stay readable); and a summary at the end.
 */
import { SingleBar } from 'cli-progress';

import { expectNumber, expectObject } from '../validate';
import { formatBytes, formatDuration, formatNumber, formatRate } from './format';
import { healthRows, HEALTH_METRICS, type RunSummary } from './run-summary';

/** A stream to draw on; terminals have isTTY and columns. */
export interface ProgressStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

/** Options of {@link TrainingProgress}. */
export interface ProgressOptions {
  /** The step the run ends at. */
  total: number;
  /** Default process.stdout. */
  stream?: ProgressStream;
  /** Draw a live bar. Default: whether the stream is a terminal. */
  live?: boolean;
  /** Without a live bar: at most one line per this many seconds (the first and last steps always print). Default 10. */
  intervalS?: number;
  /** Milliseconds now; for tests. */
  clock?: () => number;
  /** Resident memory in bytes; for tests. Default process.memoryUsage.rss. */
  memory?: () => number;
}

/** One step's numbers. */
export interface ProgressUpdate {
  step: number;
  loss: number;
  lr: number;
  tokens_per_s: number;
  /** The gradient norm before clipping. */
  grad_norm?: number;
  /** Whether that gradient was clipped. */
  clipped?: boolean;
  /** Steps skipped so far for NaN / infinity (shown when above 0). */
  skipped?: number;
}

/**
 * Progress of a training run.
 *
 * ```ts
 * const progress = new TrainingProgress({ total: 200 });
 * progress.start();
 * progress.update({ step: 1, loss: 2.31, lr: 1e-4, tokens_per_s: 950 });
 * progress.log('eval loss 2.10');
 * progress.stop();
 * ```
 */
export class TrainingProgress {
  private readonly total: number;
  private readonly stream: ProgressStream;
  private readonly live: boolean;
  private readonly intervalMs: number;
  private readonly clock: () => number;
  private readonly memory: () => number;
  private bar: SingleBar | undefined;
  private startedAt = 0;
  private startStep = 0;
  private lastLineAt = -Infinity;

  constructor(options: ProgressOptions) {
    expectObject(options, 'progress options');
    this.total = expectNumber(options.total, 'total', { min: 1, integer: true });
    this.stream = options.stream ?? process.stdout;
    this.live = options.live ?? Boolean(this.stream.isTTY);
    this.intervalMs = expectNumber(options.intervalS ?? 10, 'intervalS', { min: 0 }) * 1000;
    this.clock = options.clock ?? Date.now;
    this.memory = options.memory ?? (() => process.memoryUsage.rss());
  }

  /** Starts timing (ETA counts from here); `fromStep` for a resumed run. */
  start(fromStep = 0): void {
    this.startedAt = this.clock();
    this.startStep = fromStep;
    if (!this.live) return;
    this.bar = new SingleBar({
      stream: this.stream as NodeJS.WritableStream,
      format: '{bar} {value}/{total} | loss {loss} | lr {lr} | grad {grad} | {tps} tok/s | ETA {remaining} | RSS {rss}',
      barsize: 24,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 1,
    });
    this.bar.start(this.total, fromStep, { loss: '-', lr: '-', grad: '-', tps: '-', remaining: '-', rss: formatBytes(this.memory()) });
  }

  /** Seconds left, from the mean pace since start. */
  private etaSeconds(step: number): number | undefined {
    const done = step - this.startStep;
    if (done <= 0) return undefined;
    return (((this.clock() - this.startedAt) / 1000) * (this.total - step)) / done;
  }

  /** The fields of a step, formatted. */
  private fields(u: ProgressUpdate) {
    const eta = this.etaSeconds(u.step);
    const grad = u.grad_norm === undefined ? '-' : `${formatNumber(u.grad_norm)}${u.clipped ? ' (clipped)' : ''}${u.skipped ? `, ${u.skipped} skipped` : ''}`;
    return {
      loss: u.loss.toFixed(4),
      lr: formatRate(u.lr),
      grad,
      tps: formatNumber(Math.round(u.tokens_per_s)),
      remaining: eta === undefined ? '-' : formatDuration(eta),
      rss: formatBytes(this.memory()),
    };
  }

  /** Shows a step. */
  update(u: ProgressUpdate): void {
    const f = this.fields(u);
    if (this.bar) {
      this.bar.update(u.step, f);
      return;
    }
    const now = this.clock();
    const first = this.lastLineAt === -Infinity;
    if (!first && u.step < this.total && now - this.lastLineAt < this.intervalMs) return;
    this.lastLineAt = now;
    const pct = Math.floor((100 * u.step) / this.total);
    const grad = u.grad_norm === undefined ? '' : `  grad ${f.grad}`;
    this.stream.write(`step ${u.step}/${this.total} (${pct}%)  loss ${f.loss}  lr ${f.lr}${grad}  ${f.tps} tok/s  ETA ${f.remaining}  RSS ${f.rss}\n`);
  }

  /** Prints a line (an evaluation, a checkpoint) without breaking the bar. */
  log(line: string): void {
    if (!this.bar) {
      this.stream.write(`${line}\n`);
      return;
    }
    // Erase the bar's line, print, and draw the bar again below.
    this.stream.write(`\r\x1b[2K${line}\n`);
    // render(force) exists in cli-progress 3 but its typings leave out the argument.
    (this.bar as unknown as { render(force: boolean): void }).render(true);
  }

  /** Ends the bar (it stays on screen). */
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** Prints the end-of-run summary; `outputs` names files written (adapter, log, report). */
export function printSummary(summary: RunSummary, stream: ProgressStream = process.stdout, outputs: Record<string, string> = {}): void {
  const rows: Array<[string, string]> = [];
  if (summary.finalLoss !== undefined) rows.push(['final train loss', summary.finalLoss.toFixed(4)]);
  const e = summary.finalEval;
  if (e) rows.push(['final eval loss', `${e.eval_loss.toFixed(4)} (perplexity ${formatNumber(e.perplexity)}) at step ${e.step}`]);
  const b = summary.bestEval;
  if (b && b !== e) rows.push(['best eval loss', `${b.eval_loss.toFixed(4)} (perplexity ${formatNumber(b.perplexity)}) at step ${b.step}`]);
  for (const [k, v] of Object.entries(summary.end?.metrics ?? {})) if (!HEALTH_METRICS.has(k)) rows.push([k.replace(/_/g, ' '), formatNumber(v)]);
  rows.push(...healthRows(summary.health, formatNumber));
  if (summary.meanTokensPerS !== undefined) rows.push(['tokens per second', formatNumber(Math.round(summary.meanTokensPerS))]);
  if (summary.peakMemory !== undefined) rows.push(['peak memory (RSS)', formatBytes(summary.peakMemory)]);
  for (const [k, v] of Object.entries(outputs)) rows.push([k, v]);
  const how = summary.end ? ` (${summary.end.reason.replace(/_/g, ' ')})` : '';
  const time = summary.durationS === undefined ? '' : ` in ${formatDuration(summary.durationS)}`;
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  stream.write(`Training finished${how}: ${summary.steps} steps${time}\n`);
  for (const [k, v] of rows) stream.write(`  ${k.padEnd(width)}  ${v}\n`);
}
