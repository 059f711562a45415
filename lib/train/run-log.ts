/**
 * The run log: one JSON object per line for each event of a training run (start, step, eval, save,
 * warning, end). Each line goes to the file with one write system call, so a process that is killed keeps
 * every line written before; checkpoints and the end are also flushed to the disk itself.
 */
import * as fs from 'node:fs';

import { PeftError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { fail } from '../validate';

const EVENTS = ['start', 'step', 'eval', 'save', 'warning', 'end'];

/** The run's configuration and when it began; the first line. */
export interface StartEvent {
  event: 'start';
  config: Record<string, unknown>;
  /** Optimizer steps planned, when known. */
  total_steps?: number;
}

/** One optimizer step. */
export interface StepEvent {
  event: 'step';
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens_per_s: number;
  /** Resident memory of the process in bytes. */
  memory: number;
  /** The step's gradient clipping factor, max_grad_norm / (grad_norm + 1e-6) when below 1, else 1. */
  clip_coef?: number;
  /** Steps of this logging window (logging_steps) whose gradient was clipped. */
  clipped_steps?: number;
  /** The largest gradient norm (before clipping) of the window's steps that trained. */
  grad_norm_max?: number;
  /** Steps of this logging window skipped for a NaN or infinite loss or gradient (nan_policy 'skip'). */
  skipped_steps?: number;
}

/** Something a person should look at: a loss spike, a step skipped or stopped at for NaN / infinity. */
export interface WarningEvent {
  event: 'warning';
  step: number;
  /** 'loss_spike' or 'non_finite'. */
  kind: string;
  /** One line that says what happened and what was done. */
  message: string;
  loss?: number;
  grad_norm?: number;
  /** The first parameter with a non-finite gradient. */
  parameter?: string;
}

/** An evaluation on the validation data. */
export interface EvalEvent {
  event: 'eval';
  step: number;
  eval_loss: number;
  perplexity: number;
}

/** A checkpoint or adapter written to disk. */
export interface SaveEvent {
  event: 'save';
  step: number;
  path: string;
}

/** The end of the run: finished, stopped early, cancelled or failed. */
export interface EndEvent {
  event: 'end';
  step: number;
  /** e.g. 'completed', 'early_stopping', 'loss_spike', 'aborted', 'error'. */
  reason: string;
  /** Final numbers worth a headline (final loss, best eval loss, ...). */
  metrics?: Record<string, number>;
}

/** What a caller logs. */
export type RunEvent = StartEvent | StepEvent | EvalEvent | SaveEvent | WarningEvent | EndEvent;

/** What a line of the log holds: the event and when it was written (ms since the epoch). */
export type RunRecord = RunEvent & { time: number };

/**
 * An append-only JSON-lines log of one run.
 *
 * ```ts
 * const log = RunLog.open('out/run.jsonl');
 * log.write({ event: 'step', step: 1, loss: 2.3, lr: 1e-4, grad_norm: 0.8, tokens_per_s: 900, memory: process.memoryUsage.rss() });
 * log.close();
 * ```
 */
export class RunLog {
  readonly path: string;
  private fd: number | null;
  private readonly clock: () => number;

  private constructor(file: string, fd: number, clock: () => number) {
    this.path = file;
    this.fd = fd;
    this.clock = clock;
  }

  /** Opens `file` for appending (creating it), so a resumed run continues the same log. */
  static open(file: string, options: { clock?: () => number } = {}): RunLog {
    let fd: number;
    try {
      fd = fs.openSync(file, 'a');
    } catch (err) {
      throw new PeftError(`Could not open the run log ${file}: ${(err as Error).message}`, 'E_IO');
    }
    return new RunLog(file, fd, options.clock ?? Date.now);
  }

  /** Appends one event as a line; returns the record written. */
  write(event: RunEvent): RunRecord {
    if (this.fd === null) throw new PeftError(`The run log ${this.path} is closed`, 'E_DISPOSED');
    if (typeof event !== 'object' || event === null || !EVENTS.includes((event as { event?: string }).event as string)) {
      fail('event', `an object whose "event" is one of ${EVENTS.join(', ')}`, event);
    }
    const record = { ...event, time: this.clock() } as RunRecord;
    // One writeSync per line: no user-space buffer that a killed process could lose.
    const bytes = Buffer.from(JSON.stringify(record) + '\n', 'utf8');
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done);
    // Checkpoints and the end are moments a user relies on: make them survive a power cut too.
    if (event.event === 'save' || event.event === 'end') fs.fsyncSync(this.fd);
    return record;
  }

  /** Flushes to disk and closes the file. Safe to call twice. */
  close(): void {
    if (this.fd === null) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Reads a run log. A last line without its newline (the process died mid-write) is skipped; any
 * other line that is not a JSON object with an `event` is an `E_FORMAT` error naming the line.
 */
export function readRunLog(file: string): RunRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PeftError(`Could not read the run log ${file}: ${(err as Error).message}`, 'E_IO');
  }
  // The piece after the last newline is empty, or a line the writer never finished.
  const complete = text.split('\n').slice(0, -1);
  return complete.flatMap((line, i) => {
    if (line.trim() === '') return [];
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new PeftError(`${file}:${i + 1} is not JSON: ${(err as Error).message}`, 'E_FORMAT');
    }
    if (typeof value !== 'object' || value === null || typeof (value as { event?: unknown }).event !== 'string') {
      throw new PeftError(`${file}:${i + 1} is not a run-log record (an object with an "event")`, 'E_FORMAT');
    }
    return [value as RunRecord];
  });
}

/**
 * Cuts a run log back to the events up to `step`, for a run resumed from that step's checkpoint: the
 * steps after it are trained (and logged) again, so the log keeps one record per step. Lines that
 * are not records (an unfinished last line of a killed process) go too. Rewritten atomically.
 */
export function trimRunLog(file: string, step: number): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return; // no log yet
  }
  const kept = text.split('\n').slice(0, -1).filter((line) => {
    try {
      const r = JSON.parse(line) as { event?: unknown; step?: unknown };
      return typeof r === 'object' && r !== null && typeof r.event === 'string' && (typeof r.step !== 'number' || r.step <= step);
    } catch {
      return false;
    }
  });
  writeFileAtomic(file, kept.map((line) => line + '\n').join(''));
}
