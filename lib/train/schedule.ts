/**
 * Learning-rate schedules with linear warmup, as transformers' `get_constant_schedule_with_warmup`,
 * `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup` define them, with a state
 * that fits in a checkpoint (JSON).
 */
import { PeftError } from '../errors';
import { expectNumber, expectObject, fail } from '../validate';

/** The schedule shapes after warmup: flat, straight down to 0, or half a cosine down to 0. */
export type ScheduleType = 'constant' | 'linear' | 'cosine';

export const SCHEDULE_TYPES: readonly ScheduleType[] = ['constant', 'linear', 'cosine'];

/** Options of {@link LrSchedule}, with Hugging Face TrainingArguments' names. */
export interface ScheduleOptions {
  /** Default 'linear' (as TrainingArguments' lr_scheduler_type). */
  lr_scheduler_type?: ScheduleType;
  /** The peak learning rate, reached at the end of warmup. */
  learning_rate: number;
  /** Optimizer steps in the whole run (required for linear and cosine, and for warmup_ratio). */
  total_steps?: number;
  /** Warmup steps; when > 0 it wins over warmup_ratio, as in transformers. Default 0. */
  warmup_steps?: number;
  /** Warmup as a fraction of total_steps, rounded up. Default 0. */
  warmup_ratio?: number;
  /** Cosine only: waves over the decay; 0.5 (default) goes from the peak down to 0 once. */
  num_cycles?: number;
}

/** Everything needed to continue a schedule exactly: plain JSON. */
export interface ScheduleState {
  lr_scheduler_type: ScheduleType;
  learning_rate: number;
  total_steps: number;
  warmup_steps: number;
  num_cycles: number;
  /** Optimizer steps taken so far. */
  step: number;
}

/** transformers' TrainingArguments.get_warmup_steps: warmup_steps if > 0, else ceil(total × ratio). */
export function resolveWarmupSteps(totalSteps: number, warmupSteps = 0, warmupRatio = 0): number {
  return warmupSteps > 0 ? warmupSteps : Math.ceil(totalSteps * warmupRatio);
}

/**
 * The multiplier of the peak learning rate after `step` optimizer steps (transformers' lr_lambda of
 * `current_step`): step / warmup during warmup, then 1 (constant), a straight line to 0 at
 * total_steps (linear), or 0.5·(1 + cos(2π·num_cycles·progress)) clipped at 0 (cosine).
 */
export function lrMultiplier(type: ScheduleType, step: number, warmupSteps: number, totalSteps: number, numCycles = 0.5): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (type === 'constant') return 1;
  if (type === 'linear') return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

function scheduleType(value: unknown, argument: string): ScheduleType {
  if (!SCHEDULE_TYPES.includes(value as ScheduleType)) fail(argument, `one of ${SCHEDULE_TYPES.join(', ')}`, value, 'E_CONFIG');
  return value as ScheduleType;
}

/**
 * A learning-rate schedule. `lr` is the rate for the next optimizer step; call {@link LrSchedule.step}
 * after each optimizer step. Like transformers (LambdaLR stepped after the optimizer), the first
 * update of a run with warmup uses a rate of 0.
 *
 * ```ts
 * const schedule = new LrSchedule({ lr_scheduler_type: 'cosine', learning_rate: 2e-4, total_steps: 100, warmup_ratio: 0.1 });
 * for (let i = 0; i < 100; i++) { await optimizerStep(schedule.lr); schedule.step(); }
 * ```
 */
export class LrSchedule {
  readonly type: ScheduleType;
  readonly learningRate: number;
  readonly totalSteps: number;
  readonly warmupSteps: number;
  readonly numCycles: number;
  private steps = 0;

  constructor(options: ScheduleOptions) {
    const o = expectObject(options, 'schedule options');
    this.type = scheduleType(o.lr_scheduler_type ?? 'linear', 'lr_scheduler_type');
    this.learningRate = expectNumber(o.learning_rate, 'learning_rate', { min: 0 });
    const needsTotal = this.type !== 'constant' || (o.warmup_ratio !== undefined && o.warmup_ratio !== 0);
    if (needsTotal && o.total_steps === undefined) {
      throw new PeftError(`A ${this.type} schedule${this.type === 'constant' ? ' with warmup_ratio' : ''} needs total_steps`, 'E_CONFIG');
    }
    this.totalSteps = o.total_steps === undefined ? 0 : expectNumber(o.total_steps, 'total_steps', { min: 1, integer: true });
    const warmupSteps = o.warmup_steps === undefined ? 0 : expectNumber(o.warmup_steps, 'warmup_steps', { min: 0, integer: true });
    const warmupRatio = o.warmup_ratio === undefined ? 0 : expectNumber(o.warmup_ratio, 'warmup_ratio', { min: 0, max: 1 });
    this.warmupSteps = resolveWarmupSteps(this.totalSteps, warmupSteps, warmupRatio);
    this.numCycles = o.num_cycles === undefined ? 0.5 : expectNumber(o.num_cycles, 'num_cycles', { min: 0 });
  }

  /** Optimizer steps taken so far. */
  get currentStep(): number {
    return this.steps;
  }

  /** The learning rate for the next optimizer step. */
  get lr(): number {
    return this.lrAt(this.steps);
  }

  /** The learning rate after `step` optimizer steps. */
  lrAt(step: number): number {
    return this.learningRate * lrMultiplier(this.type, step, this.warmupSteps, this.totalSteps, this.numCycles);
  }

  /** Records one optimizer step; returns the new learning rate. */
  step(): number {
    this.steps++;
    return this.lr;
  }

  /** The state to save in a checkpoint. */
  state(): ScheduleState {
    return {
      lr_scheduler_type: this.type,
      learning_rate: this.learningRate,
      total_steps: this.totalSteps,
      warmup_steps: this.warmupSteps,
      num_cycles: this.numCycles,
      step: this.steps,
    };
  }

  /** A schedule that continues from a saved {@link ScheduleState}. */
  static fromState(state: ScheduleState): LrSchedule {
    const s = expectObject(state, 'schedule state');
    const schedule = new LrSchedule({
      lr_scheduler_type: s.lr_scheduler_type as ScheduleType,
      learning_rate: s.learning_rate as number,
      total_steps: s.total_steps === 0 ? undefined : (s.total_steps as number),
      warmup_steps: s.warmup_steps as number,
      num_cycles: s.num_cycles as number,
    });
    schedule.steps = expectNumber(s.step, 'schedule state step', { min: 0, integer: true });
    return schedule;
  }
}
