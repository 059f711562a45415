/**
 * Dtype and shape checks of op arguments on the JS side, so that messages name the arguments as
 * the facade calls them (`loraA`, `options.out`, `state.expAvg[0]`). The native binding checks
 * the same things again as a backstop for direct callers.
 * @internal
 */
import type { DType } from '../dtype';
import { PeftError } from '../errors';
import type { NativeTensor } from '../native';

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function expectDType(t: NativeTensor, allowed: readonly DType[], argument: string): void {
  const dtype = t.dtype();
  if (!allowed.includes(dtype)) {
    throw new PeftError(`Expected dtype ${allowed.join(' or ')} for ${argument} but received ${dtype}`, 'E_DTYPE');
  }
}

export function expectShape(t: NativeTensor, expected: readonly number[], argument: string): void {
  const shape = t.shape();
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
    throw new PeftError(
      `Expected shape ${shapeString(expected)} for ${argument} but received ${shapeString(shape)}`,
      'E_SHAPE',
    );
  }
}

/** A 2-D tensor of one of `dtypes`; returns its [rows, columns]. */
export function expectMatrix(t: NativeTensor, argument: string, dtypes: readonly DType[]): [number, number] {
  const shape = t.shape();
  if (shape.length !== 2) {
    throw new PeftError(`Expected a 2-D tensor for ${argument} but received shape ${shapeString(shape)}`, 'E_SHAPE');
  }
  expectDType(t, dtypes, argument);
  return [shape[0], shape[1]];
}

/** A tensor with at least one dimension of one of `dtypes`; returns its last dimension. */
export function expectFeatures(t: NativeTensor, argument: string, dtypes: readonly DType[]): number {
  const shape = t.shape();
  if (shape.length < 1) {
    throw new PeftError(`Expected a tensor with at least one dimension for ${argument} but received a scalar`, 'E_SHAPE');
  }
  expectDType(t, dtypes, argument);
  return shape[shape.length - 1];
}

/** A tensor of exactly `ndim` dimensions of one of `dtypes`; returns its shape. */
export function expectRank(t: NativeTensor, ndim: number, argument: string, dtypes: readonly DType[]): number[] {
  const shape = t.shape();
  if (shape.length !== ndim) {
    throw new PeftError(`Expected a ${ndim}-D tensor for ${argument} but received shape ${shapeString(shape)}`, 'E_SHAPE');
  }
  expectDType(t, dtypes, argument);
  return shape;
}
