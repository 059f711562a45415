/**
 * In-place scaling and copying of f32 tensors whose storage others share (gradient buffers the
 * model accumulates into, parameters the model and the optimizer read), on the native ops.
 * @internal
 */
import { PeftError } from '../errors';
import { copyAsync, scaleAsync } from '../ops/elementwise';
import { tensor, type Tensor } from '../tensor';

/**
 * Multiplies every tensor by `factor` > 0, in place (NaN and infinities stay what they are).
 * @param tensors f32, any shapes
 */
export async function scaleInPlace(tensors: Tensor[], factor: number): Promise<void> {
  if (!(factor > 0 && Number.isFinite(factor))) throw new PeftError(`scaleInPlace needs a finite factor above 0, not ${factor}`, 'E_INTERNAL');
  if (factor === 1 || tensors.length === 0) return;
  await scaleAsync(tensors, factor);
}

/**
 * Overwrites `target` with `values` (same size), in place, bit for bit: its storage stays the same
 * object, so whoever shares it sees the new values.
 * @param target f32 [...] updated in place
 * @param values the new values, as many as target has
 */
export async function copyInPlace(target: Tensor, values: Float32Array): Promise<void> {
  if (values.length !== target.size) throw new PeftError(`copyInPlace: ${values.length} values for a tensor of ${target.size}`, 'E_INTERNAL');
  await copyAsync(target, tensor(values, target.shape));
}
