/**
 * The numbers of a run, gathered from its log records: the curves, the best evaluation, timings and
 * memory. The HTML report and the end-of-run summary both read them from here.
 */
import type { EndEvent, EvalEvent, RunRecord, SaveEvent, StepEvent } from './run-log';

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
}

function lastPerStep<T extends { step: number }>(items: T[]): T[] {
  const byStep = new Map<number, T>();
  for (const item of items) byStep.set(item.step, item);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function mean(values: number[]): number | undefined {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
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
    finalLoss: steps.length ? steps[steps.length - 1].loss : undefined,
    finalEval: evals[evals.length - 1],
    bestEval,
    meanTokensPerS: mean(steps.map((s) => s.tokens_per_s).filter(Number.isFinite)),
    meanStepS: mean(gaps),
    peakMemory: steps.length ? Math.max(...steps.map((s) => s.memory)) : undefined,
    saves: records.filter((r): r is SaveEvent & { time: number } => r.event === 'save'),
    end: ends[ends.length - 1],
  };
}
