/**
 * In-place scaling and copying of f32 tensors whose storage others share (gradient buffers the
 * model accumulates into, parameters the model reads). There is no native scale or copy op, so
 * these reuse the fused optimizer kernels with settings that reduce them to exactly those
 * operations; each says below why the result is exact.
 * @internal
 */
import { PeftError } from '../errors';
import { clipGradNormAsync, sgdAsync } from '../ops/optim';
import { tensor, type Tensor } from '../tensor';

/**
 * Multiplies every tensor by `factor` in (0, 1], in place. clip_grad_norm scales by
 * maxNorm / (norm + 1e-6) when that is below 1: with maxNorm = factor · (norm + 1e-6) the
 * multiplier is `factor` rounded once to f32, as a plain multiply would round it.
 * @param tensors f32, any shapes
 */
export async function scaleInPlace(tensors: Tensor[], factor: number): Promise<void> {
  if (!(factor > 0 && factor <= 1)) throw new PeftError(`scaleInPlace needs a factor in (0, 1], not ${factor}`, 'E_INTERNAL');
  if (factor === 1 || tensors.length === 0) return;
  const norm = await clipGradNormAsync(tensors, Number.MAX_VALUE); // measures only: the ratio is above 1 for any finite norm
  // Zeros stay zeros; infinite or NaN gradients (a diverged step) cannot be scaled and stay as they are.
  if (norm === 0 || !Number.isFinite(norm)) return;
  await clipGradNormAsync(tensors, factor * (norm + 1e-6));
}

/**
 * Overwrites `target` with `values` (same size), in place, bit for bit. Two SGD steps with lr 1
 * and no momentum or decay: p − 1·p = 0 exactly, then 0 − 1·(−v) = v exactly (negation is exact).
 * Arithmetic cannot clear a NaN or an infinity, so a target holding one is left as it is: returns
 * false, and the caller must replace the storage instead.
 * @param target f32 [...] updated in place; its storage stays the same object
 * @param values the new values, as many as target has
 */
export async function copyInPlace(target: Tensor, values: Float32Array): Promise<boolean> {
  if (values.length !== target.size) throw new PeftError(`copyInPlace: ${values.length} values for a tensor of ${target.size}`, 'E_INTERNAL');
  if (!target.toFloat32Array().every(Number.isFinite)) return false;
  const plain = { lr: 1, momentum: 0, weightDecay: 0 };
  await sgdAsync([target], [target], null, plain);
  await sgdAsync([target], [tensor(values.map((v) => -v), target.shape)], null, plain);
  return true;
}
