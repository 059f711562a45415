/**
 * One optimizer step's gradient over several micro-batches (gradient accumulation), equal to the
 * gradient of the mean loss over all their tokens, as if they were one big batch.
 *
 * The model's loss is the mean over a micro-batch's n_i target tokens, and `accumulate: true` adds
 * each micro-batch's gradient g_i to the buffers; the big batch's gradient is Σ (n_i / N)·g_i. The
 * buffers are rescaled between calls (Horner's scheme): before adding g_k they are multiplied by
 * n_{k-1} / n_k, so after the last call they hold Σ (n_i / n_K)·g_i, and one last factor n_K / N
 * finishes. Visiting micro-batches by ascending token count keeps every factor at most 1.
 * @internal
 */
import type { Batch } from '../data/types';
import { IGNORE_INDEX } from '../data/encode';
import type { PeftModel } from '../peft/peft-model';
import { tensor, type Tensor } from '../tensor';
import { scaleInPlace } from './in-place';

/** A batch ready for the model. */
export interface MicroBatch {
  ids: number[][];
  labels: number[][];
  /** [batch, seq] u8, only when the batch has padding. */
  attentionMask?: Tensor;
  /** Tokens the loss averages over: labels other than -100 after the first position. */
  targets: number;
  /** Real (unpadded) tokens, for throughput. */
  tokens: number;
}

/** Target tokens of labels [batch, seq]: position t predicts labels[t + 1], so labels[0] never counts. */
export function countTargets(labels: number[][]): number {
  let n = 0;
  for (const row of labels) for (let t = 1; t < row.length; t++) if (row[t] !== IGNORE_INDEX) n++;
  return n;
}

/** The model's inputs for a data batch. */
export function microBatch(batch: Batch): MicroBatch {
  let tokens = 0;
  for (const row of batch.attentionMask) for (const m of row) tokens += m;
  const padded = tokens < batch.ids.length * batch.ids[0].length;
  return {
    ids: batch.ids,
    labels: batch.labels,
    attentionMask: padded ? tensor(batch.attentionMask, undefined, 'u8') : undefined,
    targets: countTargets(batch.labels),
    tokens,
  };
}

/** What {@link accumulateGradients} returns. */
export interface AccumulatedStep {
  /** The mean loss over all target tokens of the micro-batches (the big batch's loss). */
  loss: number;
  /** Gradients by trainable parameter name: the model's buffers, holding the big batch's gradient. */
  grads: Record<string, Tensor>;
  targets: number;
  tokens: number;
}

/** Runs the forward and backward passes of every micro-batch of one step; see the module comment. */
export async function accumulateGradients(peft: PeftModel, micro: readonly MicroBatch[]): Promise<AccumulatedStep> {
  const tokens = micro.reduce((n, m) => n + m.tokens, 0);
  // Array.prototype.sort is stable: equal counts keep the data order.
  const order = micro.filter((m) => m.targets > 0).sort((a, b) => a.targets - b.targets);
  if (order.length === 0) {
    // Nothing to learn from (every label ignored): zero gradients, loss 0, as the model gives.
    const r = await peft.loss(micro[0].ids, micro[0].labels, { attentionMask: micro[0].attentionMask });
    return { loss: r.loss, grads: r.grads, targets: 0, tokens };
  }
  let grads: Record<string, Tensor> = {};
  let last = 0;
  let weighted = 0;
  let previous = 0;
  for (const [i, m] of order.entries()) {
    if (i > 0 && previous !== m.targets) await scaleInPlace(Object.values(grads), previous / m.targets);
    const r = await peft.loss(m.ids, m.labels, { attentionMask: m.attentionMask, accumulate: i > 0 });
    grads = r.grads;
    last = r.loss;
    weighted += r.loss * m.targets;
    previous = m.targets;
  }
  const targets = order.reduce((n, m) => n + m.targets, 0);
  await scaleInPlace(Object.values(grads), previous / targets);
    // One micro-batch: its loss as the model gave it (n·x / n may differ from x in the last bit).
  return { loss: order.length === 1 ? last : weighted / targets, grads, targets, tokens };
}
