/**
 * The language-model loss of a batch from an inference forward pass and the native cross-entropy,
 * with no backward at all. The `eval` command scores a plain Model with it: a plain Model's loss()
 * would compute the gradient of every weight, since all of a base model's weights train.
 * @internal
 */
import type { TokenIds } from '../models/model';
import { crossEntropyAsync } from '../ops/loss';
import { tensor, type Tensor } from '../tensor';

/** Something with an inference forward to logits [batch, seq, vocab] (a Model or a PeftModel). */
export interface Forwarder {
  forward(ids: TokenIds, options?: { attentionMask?: Tensor }): Promise<Tensor>;
}

/**
 * Mean next-token cross-entropy (position t predicts labels[t + 1]; -100 ignored) and the number of
 * target tokens, as the model's own loss defines them.
 * @param ids [batch, seq] token ids
 * @param labels [batch, seq], -100 where no loss
 * @param attentionMask [batch, seq] u8, 1 on tokens
 */
export async function forwardLoss(model: Forwarder, ids: number[][], labels: number[][], attentionMask?: Tensor): Promise<{ loss: number; targets: number }> {
  const logits = await model.forward(ids, { attentionMask });
  const [batch, seq, vocab] = logits.shape;
  const targets = new Int32Array(batch * seq).fill(-100);
  for (let b = 0; b < batch; b++) for (let t = 0; t + 1 < seq; t++) targets[b * seq + t] = labels[b][t + 1];
  // Rows × vocabulary for the cross-entropy kernel (a copy: tensors have no reshape).
  const rows = tensor(logits.toFloat32Array(), [batch * seq, vocab]);
  logits.dispose();
  const r = await crossEntropyAsync(rows, tensor(targets, [batch * seq], 'i32'));
  rows.dispose();
  return { loss: r.count ? r.loss : 0, targets: r.count };
}
