/** NaN and infinity search over tensors, on the native thread pool (a bandwidth-bound scan). */
import { withCallSite } from '../errors';
import { native, type NativeTensor, type NonFiniteResult } from '../native';
import { handleOf, type Tensor } from '../tensor';
import { expectArray } from '../validate';

/** What {@link findNonFinite} reports for one tensor. */
export interface NonFiniteReport {
  /** Elements that are NaN or ±Infinity. */
  count: number;
  /** Flat (row-major) index of the first of them, -1 when there is none. */
  first: number;
  /** That element: NaN, Infinity or -Infinity (NaN when there is none). */
  value: number;
}

function handles(tensors: Tensor[]): NativeTensor[] {
  return expectArray(tensors, 'tensors').map((t, i) => handleOf(t, `tensors[${i}]`));
}

function reports(r: NonFiniteResult): NonFiniteReport[] {
  return r.counts.map((count, i) => ({ count, first: r.firsts[i], value: r.values[i] }));
}

/**
 * Counts the NaN and infinite elements of each tensor (f32, bf16, f16; integer tensors have none).
 * @param tensors any shapes and dtypes, contiguous
 * @returns one report per tensor, in order
 * @example findNonFinite([tensor([1, NaN, Infinity])]) // [{ count: 2, first: 1, value: NaN }]
 */
export function findNonFinite(tensors: Tensor[]): NonFiniteReport[] {
  return reports(native.findNonFinite(handles(tensors)));
}

/** {@link findNonFinite} on a worker thread. */
export function findNonFiniteAsync(tensors: Tensor[]): Promise<NonFiniteReport[]> {
  const h = handles(tensors);
  return withCallSite(async () => reports(await native.findNonFiniteAsync(h)));
}

/** A flat index as a position in `shape`: 7 in [2, 5] → [1, 2]. */
export function unravelIndex(index: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = rest % shape[d];
    rest = Math.floor(rest / shape[d]);
  }
  return out;
}
