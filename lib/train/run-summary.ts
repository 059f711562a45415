/**
 * The numbers of a run, gathered from its log records: the curves, the best evaluation, timings,
 * memory and numerical health (clipping, skipped steps, loss spikes). The HTML report and the
 * end-of-run summary both read them from here.
 */
import type { EndEvent, EvalEvent, RunRecord, SaveEvent, StepEvent, WarningEvent } from './run-log';

/** End metrics that {@link RunHealth} presents (reports show them there, not as plain metrics). */
export const HEALTH_METRICS: ReadonlySet<string> = new Set(['clipped_steps', 'trained_steps', 'skipped_steps', 'loss_spikes', 'largest_grad_norm', 'largest_grad_norm_step']);

/** Gradient clipping and numerical health of a run. */
export interface RunHealth {
  /** The clipping threshold (max_grad_norm of the config; 0 or absent: no clipping). */
  maxGradNorm?: number;
  /** Steps whose gradient was clipped, and steps that trained (not skipped), when the log says. */
  clippedSteps?: number;
  trainedSteps?: number;
  /** The largest gradient norm before clipping and its step. */
  largestGradNorm?: { step: number; value: number };
  /** Steps skipped for a NaN or infinite loss or gradient. */
  skippedSteps: number;
  /** Loss spikes, skipped steps and the step a run stopped at, one per step and kind. */
  warnings: WarningEvent[];
  /** [step, gradient norm before clipping] of the logged steps. */
  gradNorm: Array<[number, number]>;
}

/** What {@link summarizeRun} finds in a run log. */
export interface RunSummary {
  /** The configuration of the last start (a resumed run logs a start again). */
  config: Record<string, unknown>;
  totalSteps?: number;
  /** First and last record times (ms since the epoch) and the wall-clock seconds between them. */
  startedAt?: number;
  endedAt?: number;
  durationS?: number;
  /** The last optimizer step logged. */
  steps: number;
  /** [step, value], one per step: when a resumed run repeats steps, the later value counts. */
  trainLoss: Array<[number, number]>;
  learningRate: Array<[number, number]>;
  evalLoss: Array<[number, number]>;
  finalLoss?: number;
  finalEval?: EvalEvent;
  bestEval?: EvalEvent;
  meanTokensPerS?: number;
  /** Seconds per optimizer step, from step-record times. */
  meanStepS?: number;
  /** Largest resident memory seen, bytes. */
  peakMemory?: number;
  saves: SaveEvent[];
  end?: EndEvent;
  health: RunHealth;
}

function lastPerStep<T extends { step: number }>(items: T[]): T[] {
  const byStep = new Map<number, T>();
  for (const item of items) byStep.set(item.step, item);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function mean(values: number[]): number | undefined {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
}

/**
 * Clipping and skip counts: the end record's metrics (exact, from the trainer's own history) when the
 * run ended, else the sums over the logged windows.
 */
function summarizeHealth(config: Record<string, unknown>, steps: readonly StepEvent[], warnings: readonly WarningEvent[], end: EndEvent | undefined): RunHealth {
  const m = end?.metrics ?? {};
  const sum = (key: 'clipped_steps' | 'skipped_steps') => (steps.some((s) => s[key] !== undefined) ? steps.reduce((n, s) => n + (s[key] ?? 0), 0) : undefined);
  let largest: RunHealth['largestGradNorm'];
  for (const s of steps) {
    const value = s.grad_norm_max ?? s.grad_norm;
    if (Number.isFinite(value) && (largest === undefined || value > largest.value)) largest = { step: s.step, value };
  }
  if (m.largest_grad_norm !== undefined && m.largest_grad_norm_step !== undefined) largest = { step: m.largest_grad_norm_step, value: m.largest_grad_norm };
  const byKey = new Map<string, WarningEvent>();
  for (const w of warnings) byKey.set(`${w.kind}@${w.step}`, w);
  return {
    maxGradNorm: typeof config.max_grad_norm === 'number' ? config.max_grad_norm : undefined,
    clippedSteps: m.clipped_steps ?? sum('clipped_steps'),
    trainedSteps: m.trained_steps,
    largestGradNorm: largest,
    skippedSteps: m.skipped_steps ?? sum('skipped_steps') ?? 0,
    warnings: [...byKey.values()].sort((a, b) => a.step - b.step),
    gradNorm: steps.filter((s) => Number.isFinite(s.grad_norm)).map((s) => [s.step, s.grad_norm]),
  };
}

/** Lines that describe a run's health for people: clipping, the largest gradient norm, skips, spikes. */
export function healthRows(h: RunHealth, fmt: (v: number) => string): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  if (!(h.maxGradNorm === undefined || h.maxGradNorm > 0)) rows.push(['gradient clipping', 'off (max_grad_norm 0)']);
  else if (h.clippedSteps !== undefined) {
    const of = h.trainedSteps ? ` of ${h.trainedSteps} (${((100 * h.clippedSteps) / h.trainedSteps).toFixed(1)}%)` : '';
    rows.push(['clipped steps', `${h.clippedSteps}${of} at max_grad_norm ${h.maxGradNorm ?? 1}`]);
  }
  if (h.largestGradNorm) rows.push(['largest gradient norm', `${fmt(h.largestGradNorm.value)} at step ${h.largestGradNorm.step} (before clipping)`]);
  const spikes = h.warnings.filter((w) => w.kind === 'loss_spike').map((w) => w.step);
  if (h.skippedSteps > 0) rows.push(['skipped steps (NaN / infinity)', String(h.skippedSteps)]);
  if (spikes.length) rows.push(['loss spikes', `${spikes.length} (step ${spikes.slice(0, 10).join(', ')}${spikes.length > 10 ? ', ...' : ''})`]);
  return rows;
}

/** Summarizes the records of a run log (see {@link readRunLog}). */
export function summarizeRun(records: readonly RunRecord[]): RunSummary {
  const starts = records.filter((r) => r.event === 'start');
  const lastStart = starts[starts.length - 1];
  const stepRecords = records.filter((r): r is StepEvent & { time: number } => r.event === 'step');
  const steps = lastPerStep(stepRecords);
  const evals = lastPerStep(records.filter((r): r is EvalEvent & { time: number } => r.event === 'eval'));
  const ends = records.filter((r): r is EndEvent & { time: number } => r.event === 'end');
  const times = records.map((r) => r.time).filter(Number.isFinite);
  const startedAt = times.length ? Math.min(...times) : undefined;
  const endedAt = times.length ? Math.max(...times) : undefined;
  const gaps = stepRecords.slice(1).map((r, i) => (r.time - stepRecords[i].time) / 1000).filter((g) => g >= 0);
  const bestEval = evals.reduce<EvalEvent | undefined>((best, e) => (best === undefined || e.eval_loss < best.eval_loss ? e : best), undefined);
  return {
    config: lastStart?.config ?? {},
    totalSteps: lastStart?.total_steps,
    startedAt,
    endedAt,
    durationS: startedAt === undefined || endedAt === undefined ? undefined : (endedAt - startedAt) / 1000,
    steps: steps.length ? steps[steps.length - 1].step : 0,
    trainLoss: steps.map((s) => [s.step, s.loss]),
    learningRate: steps.map((s) => [s.step, s.lr]),
    evalLoss: evals.map((e) => [e.step, e.eval_loss]),
    finalLoss: [...steps].reverse().find((s) => Number.isFinite(s.loss))?.loss,
    finalEval: evals[evals.length - 1],
    bestEval,
    meanTokensPerS: mean(steps.map((s) => s.tokens_per_s).filter(Number.isFinite)),
    meanStepS: mean(gaps),
    peakMemory: steps.length ? Math.max(...steps.map((s) => s.memory)) : undefined,
    saves: records.filter((r): r is SaveEvent & { time: number } => r.event === 'save'),
    end: ends[ends.length - 1],
    health: summarizeHealth(
      lastStart?.config ?? {},
      steps,
      records.filter((r): r is WarningEvent & { time: number } => r.event === 'warning'),
      ends[ends.length - 1],
    ),
  };
}
