/** Padded batches: sequences of different lengths padded on the right to the longest in the batch. */
import { IGNORE_INDEX } from './encode';
import type { Batch, DataPosition, Example } from './types';

/** The batch of `examples[indices]`, padded with `padId` (labels with -100, attention mask with 0). */
export function padBatch(examples: readonly Example[], indices: number[], padId: number, position: DataPosition, next: DataPosition): Batch {
  const rows = indices.map((i) => examples[i]);
  const width = Math.max(...rows.map((ex) => ex.inputIds.length));
  const pad = (values: number[], fill: number) => values.concat(new Array<number>(width - values.length).fill(fill));
  const batch: Batch = {
    ids: rows.map((ex) => pad(ex.inputIds, padId)),
    labels: rows.map((ex) => pad(ex.labels, IGNORE_INDEX)),
    attentionMask: rows.map((ex) => pad(new Array<number>(ex.inputIds.length).fill(1), 0)),
    indices,
    position,
    next,
  };
  if (rows.every((ex) => ex.label !== undefined)) batch.classLabels = rows.map((ex) => ex.label as number);
  return batch;
}
