/** What the Trainer tells callbacks: after each step, evaluation and checkpoint. */

/** One optimizer step. */
export interface StepInfo {
  step: number;
  /** Mean loss over the step's target tokens (all its micro-batches). */
  loss: number;
  /** The learning rate the step used. */
  lr: number;
  /** Global gradient norm before clipping. */
  grad_norm: number;
  /** The clipping factor applied: max_grad_norm / (grad_norm + 1e-6) when below 1, else 1. Absent on a skipped step. */
  clip_coef?: number;
  /** The loss or gradient was NaN or infinite and the update was left out (nan_policy 'skip'). */
  skipped?: boolean;
  /** The loss was flagged as a spike (loss_spike_policy 'warn'). */
  loss_spike?: boolean;
  /** Tokens the step read (padding excluded). */
  tokens: number;
  tokens_per_s: number;
  /** Epochs done, fractional. */
  epoch: number;
}

/** One evaluation. */
export interface EvalInfo {
  step: number;
  eval_loss: number;
  perplexity: number;
  /** The best eval loss so far. */
  is_best: boolean;
}

/** One checkpoint, complete on disk. */
export interface SaveInfo {
  step: number;
  /** The checkpoint folder. */
  path: string;
}

/** Hooks; each may return a promise, which the trainer awaits. Abort through the `signal` option. */
export interface TrainerCallbacks {
  onStep?(info: StepInfo): void | Promise<void>;
  onEval?(info: EvalInfo): void | Promise<void>;
  onSave?(info: SaveInfo): void | Promise<void>;
}

/** Calls `hook` on each callback object in order. @internal */
export async function notify<K extends keyof TrainerCallbacks>(
  callbacks: readonly TrainerCallbacks[],
  hook: K,
  info: Parameters<NonNullable<TrainerCallbacks[K]>>[0],
): Promise<void> {
  for (const c of callbacks) {
    const fn = c[hook] as ((i: typeof info) => void | Promise<void>) | undefined;
    if (fn) await fn.call(c, info);
  }
}
