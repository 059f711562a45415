/** Text segments to token ids and labels (-100 where no loss), with BOS / EOS and truncation. */
import type { Tokenizer } from '../models/tokenizer';
import type { Segment } from './render';

/** PyTorch's ignore_index: labels with this value count towards no loss. */
export const IGNORE_INDEX = -100;

/** How to frame a sequence. */
export interface Framing {
  /** Prepended with label -100, when defined. */
  bosId?: number;
  /** Appended, when defined; its label is itself when the last segment counts towards the loss. */
  eosId?: number;
  /** Longest sequence kept; longer ones lose their end. */
  maxSeqLength: number;
}

/** Token ids and labels of one sequence. */
export interface Encoded {
  inputIds: number[];
  labels: number[];
  truncated: boolean;
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Neighbouring segments with the same loss flag joined, empty ones left out. */
function mergeSegments(segments: readonly Segment[]): Segment[] {
  const merged: Segment[] = [];
  for (const s of segments) {
    if (s.text === '') continue;
    const last = merged[merged.length - 1];
    if (last && last.loss === s.loss) last.text += s.text;
    else merged.push({ ...s });
  }
  return merged;
}

/**
 * Tokenizes the segments' text as one string (as the model will see it at inference) and marks each
 * token by the segment it starts in. A segment's first token is where the tokens of the text before it
 * stop agreeing with the whole: tokenizers such as SentencePiece's may merge across the join, and then
 * the token that straddles it counts with the later segment.
 */
export function encodeSegments(tokenizer: Tokenizer, segments: readonly Segment[], framing: Framing): Encoded {
  const parts = mergeSegments(segments);
  const text = parts.map((s) => s.text).join('');
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  // bounds[k] = the first token of part k.
  const bounds = [0];
  let chars = 0;
  for (let k = 1; k < parts.length; k++) {
    chars += parts[k - 1].text.length;
    const before = tokenizer.encode(text.slice(0, chars), { addSpecialTokens: false });
    bounds.push(Math.max(bounds[k - 1], commonPrefixLength(before, ids)));
  }
  bounds.push(ids.length);
  const loss = new Array<boolean>(ids.length).fill(false);
  parts.forEach((part, k) => loss.fill(part.loss, bounds[k], bounds[k + 1]));

  const inputIds: number[] = [];
  const labels: number[] = [];
  if (framing.bosId !== undefined) {
    inputIds.push(framing.bosId);
    labels.push(IGNORE_INDEX);
  }
  ids.forEach((id, t) => {
    inputIds.push(id);
    labels.push(loss[t] ? id : IGNORE_INDEX);
  });
  if (framing.eosId !== undefined) {
    inputIds.push(framing.eosId);
    labels.push(parts.length > 0 && parts[parts.length - 1].loss ? framing.eosId : IGNORE_INDEX);
  }
  // Nothing predicts the first token; -100 there also keeps packed examples from predicting across a join.
  if (labels.length > 0) labels[0] = IGNORE_INDEX;

  const truncated = inputIds.length > framing.maxSeqLength;
  if (truncated) {
    inputIds.length = framing.maxSeqLength;
    labels.length = framing.maxSeqLength;
  }
  return { inputIds, labels, truncated };
}
