/** Matrix products on the native GEMM. */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeMatmulOptions, type NativeTensor } from '../native';
import { handleOf, Tensor } from '../tensor';
import { fail, optionalBoolean, optionalNumber, optionsObject } from '../validate';
import { expectDType, expectMatrix, expectShape, shapeString } from './checks';

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** Use aᵀ: `a` is stored [K, M]. */
  transA?: boolean;
  /** Use bᵀ: `b` is stored [N, K] (a linear layer's weight, for y = x·Wᵀ). */
  transB?: boolean;
  /** Scales the product. Default 1. */
  alpha?: number;
  /** Write into this f32 [M, N] tensor instead of a new one. */
  out?: Tensor;
  /** Add the product to `out` (beta = 1) instead of overwriting it. Needs `out`. */
  accumulate?: boolean;
}

function prepare(a: Tensor, b: Tensor, options: MatmulOptions | undefined) {
  const o = optionsObject(options);
  const nativeOptions: NativeMatmulOptions = {
    transA: optionalBoolean(o, 'transA', false),
    transB: optionalBoolean(o, 'transB', false),
    alpha: optionalNumber(o, 'alpha', 1),
    accumulate: optionalBoolean(o, 'accumulate', false),
  };
  const ha = handleOf(a, 'a');
  const hb = handleOf(b, 'b');
  const out = o.out === undefined ? null : handleOf(o.out, 'options.out');
  const [ar, ac] = expectMatrix(ha, 'a', OPERAND_DTYPES);
  const [br, bc] = expectMatrix(hb, 'b', OPERAND_DTYPES);
  const [m, k] = nativeOptions.transA ? [ac, ar] : [ar, ac];
  const [kb, n] = nativeOptions.transB ? [bc, br] : [br, bc];
  if (k !== kb) {
    throw new PeftError(
      `Expected matching inner dimensions for a and b but received op(a) of shape ${shapeString([m, k])} ` +
        `and op(b) of shape ${shapeString([kb, n])}`,
      'E_SHAPE',
    );
  }
  if (out) {
    expectDType(out, ['f32'], 'options.out');
    expectShape(out, [m, n], 'options.out');
  } else if (nativeOptions.accumulate) {
    fail('options.out', 'a Tensor to accumulate into (option accumulate is true)', o.out);
  }
  return { args: [ha, hb, out, nativeOptions] as const, out: o.out as Tensor | undefined };
}

const OPERAND_DTYPES = ['f32', 'bf16'] as const;

function wrap(result: NativeTensor, out: Tensor | undefined): Tensor {
  return out ?? new Tensor(result);
}

/**
 * C = alpha · op(a) · op(b) (+ C): f32 or bf16 operands (2-D), f32 result and accumulation.
 * The three products of a linear layer: y = x·Wᵀ is `matmul(x, W, { transB: true })`,
 * dx = dy·W is `matmul(dy, W)`, dW = dyᵀ·x is `matmul(dy, x, { transA: true })`.
 * @param a [M, K] ([K, M] with transA)
 * @param b [K, N] ([N, K] with transB)
 * @returns [M, N] f32
 */
export function matmul(a: Tensor, b: Tensor, options?: MatmulOptions): Tensor {
  const { args, out } = prepare(a, b, options);
  return wrap(native.matmul(...args), out);
}

/** {@link matmul} on a worker thread; the event loop stays free. */
export function matmulAsync(a: Tensor, b: Tensor, options?: MatmulOptions): Promise<Tensor> {
  return withCallSite(async () => {
    const { args, out } = prepare(a, b, options);
    return wrap(await native.matmulAsync(...args), out);
  });
}
