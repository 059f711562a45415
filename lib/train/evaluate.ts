/** The evaluation loss of a PEFT model on a data set: the mean over every target token. @internal */
import type { Dataset } from '../data/dataset';
import { PeftError } from '../errors';
import type { PeftModel } from '../peft/peft-model';
import { microBatch } from './accumulate';

/** What an evaluation measures. */
export interface EvalResult {
  /** Mean next-token cross-entropy over the target tokens of the whole set. */
  eval_loss: number;
  /** exp(eval_loss). */
  perplexity: number;
  /** Target tokens counted. */
  tokens: number;
}

/**
 * Puts the model in evaluation mode and measures the loss over `data` in file order: the model's own
 * loss, which in evaluation mode applies no dropout and, with nothing training, computes no
 * gradients. The model stays in evaluation mode.
 */
export async function evaluateLoss(peft: PeftModel, data: Dataset, batchSize: number): Promise<EvalResult> {
  peft.eval();
  let sum = 0;
  let tokens = 0;
  for (const batch of data.batches(batchSize, { shuffle: false })) {
    const m = microBatch(batch);
    if (m.targets === 0) continue;
    const { loss } = await peft.loss(m.ids, m.labels, { attentionMask: m.attentionMask });
    sum += loss * m.targets;
    tokens += m.targets;
  }
  if (tokens === 0) throw new PeftError('The evaluation data has no token that counts towards the loss', 'E_CONFIG');
  const evalLoss = sum / tokens;
  return { eval_loss: evalLoss, perplexity: Math.exp(evalLoss), tokens };
}
