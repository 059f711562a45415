/**
 * Packing: consecutive short examples share one sequence of up to maxSeqLength tokens, so that batches
 * carry little padding. Greedy and in order (deterministic, and shuffling then shuffles whole packs).
 * Each example keeps label -100 on its first token, so no token is trained to predict across a join.
 * Position ids are not reset and attention is not blocked at joins (as in mlx-lm and Hugging Face's
 * ConstantLengthDataset): later examples see earlier ones in their context. `segments` records the
 * joins for a trainer that wants to do more.
 */
import type { Example } from './types';

/** Examples concatenated in order into sequences no longer than `maxSeqLength`. */
export function packExamples(examples: readonly Example[], maxSeqLength: number): Example[] {
  const packs: Example[] = [];
  let current: Example | undefined;
  for (const ex of examples) {
    if (current && current.inputIds.length + ex.inputIds.length > maxSeqLength) {
      packs.push(current);
      current = undefined;
    }
    if (!current) {
      current = { inputIds: [], labels: [], sources: [], segments: [], truncated: false };
    }
    current.segments.push(current.inputIds.length);
    // push(...) would overflow the call stack on long sequences.
    for (let t = 0; t < ex.inputIds.length; t++) {
      current.inputIds.push(ex.inputIds[t]);
      current.labels.push(ex.labels[t]);
    }
    current.sources.push(...ex.sources);
    current.truncated ||= ex.truncated;
  }
  if (current) packs.push(current);
  return packs;
}
