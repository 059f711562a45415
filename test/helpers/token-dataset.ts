/** Data sets of token sequences for Trainer tests, without a tokenizer. */
import { Dataset } from '../../lib/data/dataset';
import type { Example } from '../../lib/data/types';

/** Sequences with the loss on every token but the first; example i comes from "<test>" line i + 1. */
export function tokenDataset(seqs: number[][], padId = 0): Dataset {
  const examples: Example[] = seqs.map((ids, i) => ({
    inputIds: ids,
    labels: ids.map((t, j) => (j === 0 ? -100 : t)),
    sources: [{ file: '<test>', line: i + 1 }],
    segments: [0],
    truncated: false,
  }));
  const lengths = seqs.map((s) => s.length);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  return new Dataset(
    examples,
    {
      source: '<test>', format: 'text', records: seqs.length, examples: seqs.length, tokens, lossTokens: tokens - seqs.length,
      truncated: 0, dropped: 0, packed: false, maxSeqLength: 64, minLength: Math.min(...lengths), maxLength: Math.max(...lengths), meanLength: tokens / seqs.length,
    },
    padId,
  );
}

/** 12 sequences of lengths 3..7 over the tiny vocabulary (11 tokens). */
export const SEQS = Array.from({ length: 12 }, (_, i) => Array.from({ length: 3 + (i % 5) }, (_, j) => (2 * i + 3 * j + 1) % 11));
