/**
 * Numerical health of a training run: the policies, the clipping coefficient of a step, the
 * loss-spike detector, the wording for steps whose loss or gradient is NaN or infinite, and the
 * run's totals (clipped, skipped, spiking steps) from its step history. No native code here: the
 * command line's --help reads the policy names.
 * @internal
 */
import type { StepRecord } from './checkpoint';

/** What a step with a NaN or infinite loss or gradient norm does: stop the run, or skip the update. */
export type NanPolicy = 'stop' | 'skip';
export const NAN_POLICIES: readonly NanPolicy[] = ['stop', 'skip'];

/** What a loss spike does: a warning (and the step trains), stop the run before its update, or nothing. */
export type LossSpikePolicy = 'warn' | 'stop' | 'ignore';
export const LOSS_SPIKE_POLICIES: readonly LossSpikePolicy[] = ['warn', 'stop', 'ignore'];

/**
 * torch.nn.utils.clip_grad_norm_'s factor: max_norm / (norm + 1e-6) when below 1, else 1 (and 1
 * without clipping, maxNorm 0). A step is clipped when it is below 1.
 */
export function clipCoefficient(norm: number, maxNorm: number): number {
  return maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
}

/** The verdict on one loss. */
export interface SpikeCheck {
  spike: boolean;
  /** Mean and standard deviation of the window the loss was compared with. */
  mean: number;
  std: number;
  /** The loss above which it is a spike: mean + threshold · max(std, 5% of |mean|). */
  limit: number;
}

/** Losses needed in the window before anything is flagged (or the whole window, when smaller). */
const MIN_HISTORY = 10;
/** The deviation counts as at least this fraction of the mean, so a flat curve does not flag noise. */
const MIN_RELATIVE_STD = 0.05;

/**
 * Flags a step whose loss exceeds the mean of the last `window` losses by more than `threshold`
 * standard deviations. Flagged and skipped steps stay out of the window, so one spike does not
 * hide the next.
 */
export class LossSpikeDetector {
  private readonly losses: number[] = [];

  constructor(
    readonly window: number,
    readonly threshold: number,
  ) {}

  /** Rebuilds the window from a run's history (resuming gives the same verdicts). */
  static fromHistory(history: readonly StepRecord[], window: number, threshold: number): LossSpikeDetector {
    const d = new LossSpikeDetector(window, threshold);
    for (const r of history) if (!r.skipped && !r.loss_spike && Number.isFinite(r.loss)) d.add(r.loss);
    return d;
  }

  /** The verdict on `loss` (not yet added), or undefined while the window is too short to judge. */
  check(loss: number): SpikeCheck | undefined {
    const n = this.losses.length;
    if (n < Math.min(MIN_HISTORY, this.window)) return undefined;
    const mean = this.losses.reduce((a, b) => a + b, 0) / n;
    const std = Math.sqrt(this.losses.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
    const limit = mean + this.threshold * Math.max(std, MIN_RELATIVE_STD * Math.abs(mean));
    return { spike: loss > limit, mean, std, limit };
  }

  /** Adds a loss that was not a spike. */
  add(loss: number): void {
    this.losses.push(loss);
    if (this.losses.length > this.window) this.losses.shift();
  }
}

/** "the loss is NaN and the gradient norm is Infinity": what was not finite in a step. */
export function nonFiniteWhat(loss: number, gradNorm: number): string {
  const parts: string[] = [];
  if (!Number.isFinite(loss)) parts.push(`the loss is ${loss}`);
  if (!Number.isFinite(gradNorm)) parts.push(`the gradient norm is ${gradNorm}`);
  return parts.join(' and ');
}

/**
 * Gradient clipping and numerical health over the whole run (steps before a resume included),
 * from the step history.
 */
export interface TrainingHealth {
  /** Steps whose gradient norm exceeded max_grad_norm and was scaled down to it. */
  clipped_steps: number;
  /** Steps that updated the weights (not skipped). */
  trained_steps: number;
  /** The largest gradient norm before clipping, and its step. */
  largest_grad_norm?: { step: number; grad_norm: number };
  /** Steps skipped for a NaN or infinite loss or gradient norm (nan_policy 'skip'). */
  skipped_steps: number[];
  /** Steps whose loss was flagged as a spike. */
  loss_spikes: number[];
}

/** Clipping counts, skipped steps and loss spikes of a step history. */
export function trainingHealth(history: readonly StepRecord[]): TrainingHealth {
  const trained = history.filter((r) => !r.skipped);
  let largest: TrainingHealth['largest_grad_norm'];
  for (const r of trained) if (largest === undefined || r.grad_norm > largest.grad_norm) largest = { step: r.step, grad_norm: r.grad_norm };
  return {
    clipped_steps: trained.filter((r) => (r.clip_coef ?? 1) < 1).length,
    trained_steps: trained.length,
    ...(largest ? { largest_grad_norm: largest } : {}),
    skipped_steps: history.filter((r) => r.skipped).map((r) => r.step),
    loss_spikes: history.filter((r) => r.loss_spike).map((r) => r.step),
  };
}

/** The same as end-of-run metrics for the run log (see run-summary's HEALTH_METRICS). */
export function healthMetrics(history: readonly StepRecord[]): Record<string, number> {
  const h = trainingHealth(history);
  return {
    clipped_steps: h.clipped_steps,
    trained_steps: h.trained_steps,
    skipped_steps: h.skipped_steps.length,
    loss_spikes: h.loss_spikes.length,
    ...(h.largest_grad_norm ? { largest_grad_norm: h.largest_grad_norm.grad_norm, largest_grad_norm_step: h.largest_grad_norm.step } : {}),
  };
}
