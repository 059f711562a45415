/**
 * LoRA over a batch whose rows use different adapters, in one call (serving many adapters on one
 * base model, as Punica's SGMV / BGMV and S-LoRA do): runs of rows that share an adapter go through
 * the GEMM, single rows through matrix-vector loops spread over the threads.
 */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeTensor } from '../native';
import { handleOf, tensor, Tensor, zeros } from '../tensor';
import { fail, optionsObject } from '../validate';
import { expectMatrix, shapeString } from './checks';

/** One adapter of a batch: its factors for the layer and its scaling. */
export interface LoraBatchAdapter {
  /** lora_A [r, K] f32 (ranks may differ between adapters) */
  a: Tensor;
  /** lora_B [N, r] f32 */
  b: Tensor;
  /** lora_alpha / r (or / √r with rsLoRA) */
  scale: number;
}

/** Options of {@link loraBatchForward}. */
export interface LoraBatchOptions {
  /** Add into this f32 [M, N] tensor (the base product's output) instead of a new zero one. */
  out?: Tensor;
}

type Args = [NativeTensor, { a: NativeTensor; b: NativeTensor; scale: number }[], NativeTensor, NativeTensor];

function args(x: Tensor, adapters: readonly LoraBatchAdapter[], rowAdapter: ArrayLike<number>, options: LoraBatchOptions | undefined): [Args, Tensor] {
  const hx = handleOf(x, 'x');
  const [m] = expectMatrix(hx, 'x', ['f32']);
  if (!Array.isArray(adapters)) fail('adapters', 'an array of { a, b, scale }', adapters);
  const list = adapters.map((ad, i) => {
    if (typeof ad !== 'object' || ad === null) fail(`adapters[${i}]`, 'an object { a, b, scale }', ad);
    if (typeof ad.scale !== 'number' || !Number.isFinite(ad.scale)) fail(`adapters[${i}].scale`, 'a finite number', ad.scale);
    return { a: handleOf(ad.a, `adapters[${i}].a`), b: handleOf(ad.b, `adapters[${i}].b`), scale: ad.scale };
  });
  if (rowAdapter === null || typeof rowAdapter !== 'object' || typeof rowAdapter.length !== 'number') fail('rowAdapter', 'an array of adapter indices, one per row of x', rowAdapter);
  if (rowAdapter.length !== m) {
    throw new PeftError(`Expected one adapter index per row of x (${m}) for rowAdapter but received ${rowAdapter.length}`, 'E_SHAPE');
  }
  for (let i = 0; i < m; i++) {
    const v = rowAdapter[i];
    if (!Number.isInteger(v) || v < -1 || v >= adapters.length) fail(`rowAdapter[${i}]`, `an adapter index in [-1, ${adapters.length}) (-1: no adapter)`, v, 'E_RANGE');
  }
  const o = optionsObject(options);
  let out = o.out as Tensor | undefined;
  if (out === undefined) {
    if (!adapters.length) throw new PeftError('Expected options.out (the output to add into) when there are no adapters to take N from', 'E_ARGUMENT');
    out = zeros([m, adapters[0].b.shape[0]]);
  }
  const hy = handleOf(out, 'options.out');
  expectMatrix(hy, 'options.out', ['f32']);
  if (hy.shape()[0] !== m) throw new PeftError(`Expected options.out of ${m} rows but received shape ${shapeString(hy.shape())}`, 'E_SHAPE');
  return [[hx, list, handleOf(tensor(Int32Array.from(rowAdapter), [m]), 'rowAdapter'), hy], out];
}

/**
 * y[i] += scale · (x[i]·Aᵀ)·Bᵀ with the adapter rowAdapter[i] names (-1: none) for every row i of
 * x [M, K]: a whole serving batch's LoRA updates in one call, never forming B·A.
 * @returns the output: options.out (updated in place), or a new [M, N] f32 tensor
 */
export function loraBatchForward(x: Tensor, adapters: readonly LoraBatchAdapter[], rowAdapter: ArrayLike<number>, options?: LoraBatchOptions): Tensor {
  const [a, out] = args(x, adapters, rowAdapter, options);
  native.loraBatchForward(...a);
  return out;
}

/** {@link loraBatchForward} on a worker thread. */
export function loraBatchForwardAsync(x: Tensor, adapters: readonly LoraBatchAdapter[], rowAdapter: ArrayLike<number>, options?: LoraBatchOptions): Promise<Tensor> {
  return withCallSite(async () => {
    const [a, out] = args(x, adapters, rowAdapter, options);
    await native.loraBatchForwardAsync(...a);
    return out;
  });
}
