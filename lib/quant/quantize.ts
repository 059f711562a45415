/** quantize / dequantize to and from bitsandbytes' 4-bit formats, and products with a 4-bit weight. */
import { checkDType } from '../dtype';
import { PeftError, withCallSite } from '../errors';
import { native, type NativeQuant4, type NativeQuantize4Options, type NativeTensor } from '../native';
import { handleOf, Tensor } from '../tensor';
import { expectObject, fail, optionalBoolean, optionalNumber, optionsObject } from '../validate';
import { expectDType, expectMatrix, expectShape, shapeString } from '../ops/checks';
import { nativeQuant4, QuantizedTensor, type QuantSourceDType, type QuantType } from './quantized-tensor';

/** Options of {@link quantize}, with bitsandbytes' names. */
export interface QuantizeOptions {
  /** 'nf4' (4-bit NormalFloat, for normally distributed weights) or 'fp4'. */
  quant_type: QuantType;
  /** Elements per block: a power of two in [32, 4096]. Default 64. */
  blocksize?: number;
  /** Double-quantize the block scales (bitsandbytes' compress_statistics): ~0.37 fewer bits per element. */
  double_quant?: boolean;
}

/** Options of {@link dequantize}. */
export interface DequantizeOptions {
  /** The result's dtype. Default 'f32'; pass `q.dtype` for the original one. */
  dtype?: QuantSourceDType;
  /** Write into this f32 tensor of `q.shape` instead of a new one (dtype must then be f32). */
  out?: Tensor;
}

/** Options of {@link quantMatmul}. */
export interface QuantMatmulOptions {
  /** Use Wᵀ: a·dequant(W)ᵀ with a [M, K] for W [N, K] (a linear layer's forward). Default false: a [M, N] · W. */
  transB?: boolean;
}

const SOURCE_DTYPES: readonly QuantSourceDType[] = ['f32', 'bf16', 'f16'];

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** @internal A block size: a power of two in [32, 4096], else E_RANGE naming `argument`. */
export function checkBlocksize(value: number, argument: string): number {
  if (!isPowerOfTwo(value) || value < 32 || value > 4096) fail(argument, 'a power of two in [32, 4096]', value, 'E_RANGE');
  return value;
}

function quantizeArgs(t: Tensor, options: QuantizeOptions): [NativeTensor, NativeQuantize4Options] {
  const handle = handleOf(t, 't');
  expectDType(handle, SOURCE_DTYPES, 't');
  const o = expectObject(options, 'options');
  if (o.quant_type !== 'nf4' && o.quant_type !== 'fp4') fail('option quant_type', '"nf4" or "fp4"', o.quant_type);
  const blocksize = checkBlocksize(optionalNumber(o, 'blocksize', 64, { integer: true }), 'option blocksize');
  return [handle, { quantType: o.quant_type, blocksize, doubleQuant: optionalBoolean(o, 'double_quant', false) }];
}

function fromNative(parts: NativeQuant4, source: Tensor, options: NativeQuantize4Options): QuantizedTensor {
  const nested =
    parts.nestedAbsmax && parts.nestedQuantMap && parts.nestedBlocksize !== undefined && parts.offset !== undefined
      ? {
          absmax: new Tensor(parts.nestedAbsmax),
          quant_map: new Tensor(parts.nestedQuantMap),
          blocksize: parts.nestedBlocksize,
          offset: parts.offset,
        }
      : null;
  return new QuantizedTensor({
    data: new Tensor(parts.data),
    absmax: new Tensor(parts.absmax),
    quant_map: new Tensor(parts.quantMap),
    nested,
    shape: source.shape,
    dtype: source.dtype as QuantSourceDType,
    blocksize: parts.blocksize,
    quant_type: options.quantType,
  });
}

/**
 * Quantizes a tensor to 4 bits exactly as bitsandbytes' `quantize_4bit` does: the same code
 * tables, thresholds, block layout and nibble order, and with `double_quant` the same 8-bit
 * double quantization of the scales. NaN or Inf in `t` is an `E_RANGE` error naming its index.
 * @param t f32, bf16 or f16, any shape.
 * @example
 * const q = quantize(weight, { quant_type: 'nf4', blocksize: 64, double_quant: true });
 * const restored = dequantize(q); // f32, weight's shape
 */
export function quantize(t: Tensor, options: QuantizeOptions): QuantizedTensor {
  const args = quantizeArgs(t, options);
  return fromNative(native.quantize4(...args), t, args[1]);
}

/** {@link quantize} on a worker thread. */
export function quantizeAsync(t: Tensor, options: QuantizeOptions): Promise<QuantizedTensor> {
  return withCallSite(async () => {
    const args = quantizeArgs(t, options);
    return fromNative(await native.quantize4Async(...args), t, args[1]);
  });
}

function dequantizeArgs(q: QuantizedTensor, options: DequantizeOptions | undefined) {
  const parts = nativeQuant4(q, 'q');
  const o = optionsObject(options);
  const dtype = o.dtype === undefined ? 'f32' : checkDType(o.dtype, 'option dtype');
  if (!SOURCE_DTYPES.includes(dtype as QuantSourceDType)) fail('option dtype', 'f32, bf16 or f16', dtype, 'E_DTYPE');
  let out: NativeTensor | null = null;
  if (o.out !== undefined) {
    out = handleOf(o.out, 'options.out');
    expectDType(out, ['f32'], 'options.out');
    expectShape(out, q.shape, 'options.out');
    if (dtype !== 'f32') fail('option dtype', "'f32' (options.out is given)", dtype, 'E_DTYPE');
  }
  const args: [NativeQuant4, number[], NativeTensor | null] = [parts, [...q.shape], out];
  return { args, dtype: dtype as QuantSourceDType, out: o.out as Tensor | undefined };
}

function converted(f32: Tensor, dtype: QuantSourceDType): Tensor {
  if (dtype === 'f32') return f32;
  const out = f32.to(dtype); // rounds to nearest even, as bitsandbytes' cast of its f32 product
  f32.dispose();
  return out;
}

/**
 * Restores a 4-bit tensor: code value × block scale (after undoing the double quantization),
 * in f32 arithmetic as bitsandbytes' `dequantize_4bit`, then cast to `options.dtype`.
 * @returns a tensor of `q.shape`.
 */
export function dequantize(q: QuantizedTensor, options?: DequantizeOptions): Tensor {
  const { args, dtype, out } = dequantizeArgs(q, options);
  const result = native.dequantize4(...args);
  return out ?? converted(new Tensor(result), dtype);
}

/** {@link dequantize} on a worker thread. */
export function dequantizeAsync(q: QuantizedTensor, options?: DequantizeOptions): Promise<Tensor> {
  return withCallSite(async () => {
    const { args, dtype, out } = dequantizeArgs(q, options);
    const result = await native.dequantize4Async(...args);
    return out ?? converted(new Tensor(result), dtype);
  });
}

function matmulArgs(a: Tensor, q: QuantizedTensor, options: QuantMatmulOptions | undefined) {
  const parts = nativeQuant4(q, 'q');
  const transB = optionalBoolean(optionsObject(options), 'transB', false);
  if (q.shape.length !== 2) {
    throw new PeftError(`Expected a 2-D quantized weight for q but received shape ${shapeString(q.shape)}`, 'E_SHAPE');
  }
  const handle = handleOf(a, 'a');
  const [, inner] = expectMatrix(handle, 'a', transB ? ['f32', 'bf16'] : ['f32']);
  const [n, k] = q.shape;
  if (inner !== (transB ? k : n)) {
    throw new PeftError(
      `Expected matching inner dimensions for a and q but received a of shape ${shapeString(handle.shape())} ` +
        `and op(W) of shape ${shapeString(transB ? [k, n] : [n, k])}`,
      'E_SHAPE',
    );
  }
  return [handle, parts, [n, k], { transB }] as [NativeTensor, NativeQuant4, number[], { transB: boolean }];
}

/**
 * The product with a 4-bit weight W [N, K], dequantized a panel of rows at a time inside the
 * product (the f32 matrix never exists whole): `a · dequant(W)ᵀ` with `transB` (a linear layer's
 * y = x·Wᵀ, a [M, K]), else `a · dequant(W)` (its dx = dy·W, a [M, N]).
 * @returns [M, N] with transB, else [M, K], f32.
 */
export function quantMatmul(a: Tensor, q: QuantizedTensor, options?: QuantMatmulOptions): Tensor {
  return new Tensor(native.quant4Matmul(...matmulArgs(a, q, options)));
}

/** {@link quantMatmul} on a worker thread. */
export function quantMatmulAsync(a: Tensor, q: QuantizedTensor, options?: QuantMatmulOptions): Promise<Tensor> {
  return withCallSite(async () => new Tensor(await native.quant4MatmulAsync(...matmulArgs(a, q, options))));
}
