/**
 * The steps between two run-log lines (logging_steps of them): the mean loss of the steps that
 * trained (skipped steps' NaN left out, as Hugging Face's logging_nan_inf_filter leaves them out),
 * how many were clipped or skipped, and the largest gradient norm.
 * @internal
 */
import type { StepRecord } from './checkpoint';

export class LogWindow {
  private lossSum = 0;
  private trained = 0;
  private clipped = 0;
  private skipped = 0;
  private maxNorm = -Infinity;

  add(r: StepRecord): void {
    if (r.skipped) {
      this.skipped++;
      return;
    }
    this.lossSum += r.loss;
    this.trained++;
    if (r.clip_coef !== undefined && r.clip_coef < 1) this.clipped++;
    if (r.grad_norm > this.maxNorm) this.maxNorm = r.grad_norm;
  }

  /** The window's numbers for a step line; the loss is NaN when every step was skipped. */
  fields(): { loss: number; clipped_steps: number; skipped_steps: number; grad_norm_max?: number } {
    return {
      loss: this.trained ? this.lossSum / this.trained : NaN,
      clipped_steps: this.clipped,
      skipped_steps: this.skipped,
      ...(this.trained ? { grad_norm_max: this.maxNorm } : {}),
    };
  }

  reset(): void {
    this.lossSum = 0;
    this.trained = 0;
    this.clipped = 0;
    this.skipped = 0;
    this.maxNorm = -Infinity;
  }
}
