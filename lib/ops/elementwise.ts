/** In-place scaling of f32 tensors and copying into one, on the native thread pool. */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeTensor } from '../native';
import { handleOf, type Tensor } from '../tensor';
import { expectArray, expectNumber } from '../validate';
import { expectDType } from './checks';

function scaleArgs(tensors: Tensor[], factor: number): [NativeTensor[], number] {
  const list = expectArray(tensors, 'tensors').map((t, i) => handleOf(t, `tensors[${i}]`));
  list.forEach((t, i) => {
    expectDType(t, ['f32'], `tensors[${i}]`);
    const first = list.indexOf(t);
    if (first !== i) throw new PeftError(`Expected distinct tensors in tensors but tensors[${i}] repeats tensors[${first}]`, 'E_ARGUMENT');
  });
  return [list, expectNumber(factor, 'factor')];
}

/**
 * Multiplies every tensor by `factor`, in place (each value rounded once, as a plain f32 multiply).
 * @param tensors f32, any shapes, each once
 * @example scale([grad], 0.5)
 */
export function scale(tensors: Tensor[], factor: number): void {
  native.scale(...scaleArgs(tensors, factor));
}

/** {@link scale} on a worker thread. */
export function scaleAsync(tensors: Tensor[], factor: number): Promise<void> {
  return withCallSite(() => native.scaleAsync(...scaleArgs(tensors, factor)));
}

function copyArgs(target: Tensor, source: Tensor): [NativeTensor, NativeTensor] {
  const t = handleOf(target, 'target'), s = handleOf(source, 'source');
  expectDType(t, ['f32'], 'target');
  expectDType(s, ['f32'], 'source');
  return [t, s];
}

/**
 * Overwrites `target` with the values of `source` (as many values, any shape), bit for bit, in place:
 * the target keeps its storage, so a model or optimizer that shares it sees the new values.
 * @param target f32, updated in place
 * @param source f32, as many values as target
 */
export function copy(target: Tensor, source: Tensor): void {
  native.copy(...copyArgs(target, source));
}

/** {@link copy} on a worker thread. */
export function copyAsync(target: Tensor, source: Tensor): Promise<void> {
  return withCallSite(() => native.copyAsync(...copyArgs(target, source)));
}
