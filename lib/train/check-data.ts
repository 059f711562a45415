/**
 * Checks the token ids and labels of every sequence against the model before training, so that a
 * corrupted sample is refused up front, naming its record, rather than failing (or poisoning the
 * weights) mid-run.
 * @internal
 */
import type { Dataset } from '../data/dataset';
import { IGNORE_INDEX } from '../data/encode';
import { PeftError } from '../errors';
import { describe } from '../validate';

/** The code for a bad id or label: NaN and infinities are E_NONFINITE, other bad numbers E_RANGE. */
function codeOf(value: unknown): 'E_NONFINITE' | 'E_RANGE' {
  return typeof value === 'number' && !Number.isFinite(value) ? 'E_NONFINITE' : 'E_RANGE';
}

/**
 * Throws when a sequence holds an id outside [0, vocab), or a label other than -100 outside it
 * (E_RANGE; NaN or infinity: E_NONFINITE), naming the record (file and line) it came from.
 * @param role 'training' or 'validation', for the message
 */
export function checkTokenData(data: Dataset, vocab: number, role: string): void {
  const ok = (v: number) => Number.isInteger(v) && v >= 0 && v < vocab;
  if (!ok(data.padId)) throw new PeftError(`Expected a padding id in [0, ${vocab}) (the model's vocabulary) for the ${role} data but it is ${data.padId}`, codeOf(data.padId));
  const examples = data.examples;
  for (let i = 0; i < examples.length; i++) {
    const ex = examples[i];
    for (const [field, values, ignorable] of [['token id', ex.inputIds, false], ['label', ex.labels, true]] as const) {
      for (let t = 0; t < values.length; t++) {
        const v = values[t];
        if (ok(v) || (ignorable && v === IGNORE_INDEX)) continue;
        // A packed sequence holds several records: name the one whose segment holds position t.
        let k = 0;
        while (k + 1 < ex.segments.length && ex.segments[k + 1] <= t) k++;
        const src = ex.sources[Math.min(k, ex.sources.length - 1)];
        const from = src ? ` (from ${src.file} line ${src.line})` : '';
        throw new PeftError(
          `Expected ${field}s in [0, ${vocab}) (the model's vocabulary${ignorable ? `, or ${IGNORE_INDEX}` : ''}) in the ${role} data but ` +
            `sequence ${i}${from} has ${describe(v)} at position ${t}`,
          codeOf(v),
        );
      }
    }
  }
}
