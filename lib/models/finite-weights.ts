/**
 * The NaN / infinity check of a model's weights: one native scan over every tensor (memory
 * bandwidth bound), refusing with E_NONFINITE and naming the tensor, because a single NaN weight
 * turns every logit and every gradient into NaN without saying where it came from.
 * @internal
 */
import { PeftError } from '../errors';
import { findNonFiniteAsync, unravelIndex } from '../ops/finite';
import type { QuantizedTensor } from '../quant/quantized-tensor';
import type { Tensor } from '../tensor';

/** A tensor to check, under the name the error should give it. */
export type NamedTensor = readonly [name: string, tensor: Tensor];

/** The float parts of 4-bit weights, by weight name: their block scales (a NaN scale spoils its block). */
export function quantizedScales(weights: ReadonlyMap<string, QuantizedTensor>): NamedTensor[] {
  return [...weights].flatMap(([name, q]) => {
    const out: NamedTensor[] = [];
    if (q.absmax.dtype !== 'u8') out.push([`${name} (absmax)`, q.absmax]);
    if (q.nested) out.push([`${name} (nested absmax)`, q.nested.absmax]);
    return out;
  });
}

/**
 * Throws E_NONFINITE when any tensor holds NaN or ±Infinity, naming the first such tensor (in the
 * given order), how many values, where the first is, and how many other tensors have some.
 * @param what who is checking, for the message (e.g. "loadModel(dir)")
 * @param hint how to proceed, appended to the message
 */
export async function assertFiniteTensors(tensors: readonly NamedTensor[], what: string, hint: string): Promise<void> {
  if (tensors.length === 0) return;
  const found = await findNonFiniteAsync(tensors.map(([, t]) => t));
  const bad = found.map((r, i) => ({ ...r, name: tensors[i][0], shape: tensors[i][1].shape })).filter((r) => r.count > 0);
  if (bad.length === 0) return;
  const b = bad[0];
  const others = bad.length > 1 ? `; ${bad.length - 1} other tensor${bad.length > 2 ? 's' : ''} too (${bad.slice(1, 4).map((o) => o.name).join(', ')}${bad.length > 4 ? ', ...' : ''})` : '';
  throw new PeftError(
    `${what}: ${b.name} holds ${b.count} NaN or infinite value${b.count === 1 ? '' : 's'} of ${b.shape.reduce((x, y) => x * y, 1)} ` +
      `(the first, ${b.value}, at [${unravelIndex(b.first, b.shape).join(', ')}])${others}. ${hint}`,
    'E_NONFINITE',
  );
}
