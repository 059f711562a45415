/**
 * Matrices in ggml's block formats, as GGUF files store them (Q4_0 … Q8_0, the K-quants Q2_K … Q6_K,
 * IQ4_NL, IQ4_XS): quantize as llama-quantize does, dequantize, and multiply with a
 * quantized weight panel by panel (the f32 matrix never exists whole).
 */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeGgmlFormat, type NativeTensor } from '../native';
import { handleOf, Tensor } from '../tensor';
import { fail, optionalBoolean, optionsObject } from '../validate';
import { expectMatrix, shapeString } from '../ops/checks';

/** The ggml block types with kernels here. */
export const GGML_QUANT_TYPES = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'IQ4_NL', 'IQ4_XS'] as const;
export type GgmlQuantType = (typeof GGML_QUANT_TYPES)[number];

let formatsByName: Map<string, NativeGgmlFormat> | undefined;

/** The block layout of a ggml type: elements and bytes per block, and whether a quantizer exists. */
export function ggmlFormat(type: string): NativeGgmlFormat {
  formatsByName ??= new Map(native.ggmlFormats().map((f) => [f.name, f]));
  const f = formatsByName.get(type);
  if (!f) fail('type', `a ggml block type (${GGML_QUANT_TYPES.join(', ')})`, type, 'E_UNSUPPORTED');
  return f;
}

/** Whether `type` names a ggml block type with kernels here. */
export function isGgmlQuantType(type: unknown): type is GgmlQuantType {
  return typeof type === 'string' && (GGML_QUANT_TYPES as readonly string[]).includes(type);
}

/**
 * A [rows, cols] matrix in a ggml block format: `data` holds the blocks row after row, exactly as a
 * GGUF file stores the tensor (cols is a multiple of the type's block, 32 or 256).
 */
export class GgmlTensor {
  /** u8 [rows · bytes per row]: the blocks. */
  readonly data: Tensor;
  readonly type: GgmlQuantType;
  /** [rows, cols] */
  readonly shape: readonly [number, number];

  /** @internal Use {@link quantizeGgml}, or a model's quantizedWeight(). */
  constructor(data: Tensor, type: GgmlQuantType, shape: readonly number[]) {
    const f = ggmlFormat(type);
    if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0) || shape[1] % f.block !== 0) {
      throw new PeftError(`Expected a shape [rows, cols] with cols a multiple of ${f.block} for ${type} but received ${shapeString(shape)}`, 'E_SHAPE');
    }
    const bytes = (shape[0] * shape[1] / f.block) * f.bytes;
    if (data.dtype !== 'u8' || data.size !== bytes) {
      throw new PeftError(`Expected ${bytes} u8 block bytes for a ${type} tensor of shape ${shapeString(shape)} but received ${data.dtype} of ${data.size} elements`, 'E_SHAPE');
    }
    this.data = data;
    this.type = type;
    this.shape = Object.freeze([shape[0], shape[1]]) as readonly [number, number];
  }

  /** Elements of the matrix. */
  get size(): number {
    return this.shape[0] * this.shape[1];
  }

  /** Bytes of the blocks. */
  get nbytes(): number {
    return this.data.size;
  }

  /** Stored bits per element (4.5 for Q4_K, 6.5625 for Q6_K, 8.5 for Q8_0). */
  get bitsPerParameter(): number {
    return (this.nbytes * 8) / this.size;
  }

  /** Frees the native memory now (a view of a file unmaps once nothing else uses it). */
  dispose(): void {
    this.data.dispose();
  }

  /** @internal */
  toString(): string {
    return `GgmlTensor(${this.type}, [${this.shape.join(', ')}])`;
  }
}

function quantizeArgs(t: Tensor, type: unknown): [NativeTensor, string, number[]] {
  const handle = handleOf(t, 't');
  if (handle.dtype() !== 'f32') fail('t', 'an f32 tensor (convert with .to("f32"))', `a ${handle.dtype()} tensor`, 'E_DTYPE');
  const shape = handle.shape();
  if (shape.length !== 2 && shape.length !== 1) fail('t', 'a 1-D or 2-D tensor', `shape ${shapeString(shape)}`, 'E_SHAPE');
  const f = ggmlFormat(type as string);
  if (!f.quantizer) throw new PeftError(`There is no quantizer for ${f.name} here`, 'E_UNSUPPORTED');
  return [handle, f.name, shape.length === 1 ? [1, shape[0]] : shape];
}

/**
 * Quantizes an f32 matrix [rows, cols] (or a vector) to a ggml block type exactly as llama-quantize
 * does without an importance matrix (ggml_quantize_chunk: the reference quantizers
 * `quantize_row_*_ref`, and `quantize_iq4_nl` for IQ4_NL), bit for bit. `E_SHAPE` unless cols is a multiple of the type's block, `E_RANGE` for NaN
 * or infinity.
 * @example const q = quantizeGgml(weight, 'Q4_K'); const back = dequantizeGgml(q);
 */
export function quantizeGgml(t: Tensor, type: GgmlQuantType): GgmlTensor {
  const [handle, name, shape] = quantizeArgs(t, type);
  return new GgmlTensor(new Tensor(native.ggmlQuantize(handle, name)), name as GgmlQuantType, shape);
}

/** {@link quantizeGgml} on a worker thread. */
export function quantizeGgmlAsync(t: Tensor, type: GgmlQuantType): Promise<GgmlTensor> {
  return withCallSite(async () => {
    const [handle, name, shape] = quantizeArgs(t, type);
    return new GgmlTensor(new Tensor(await native.ggmlQuantizeAsync(handle, name)), name as GgmlQuantType, shape);
  });
}

function expectGgml(q: unknown, argument: string): GgmlTensor {
  if (!(q instanceof GgmlTensor)) fail(argument, 'a GgmlTensor (from quantizeGgml() or a GGUF model)', q);
  return q;
}

/** The f32 values [rows, cols] of a ggml block matrix, as ggml's dequantize_row_* computes them. */
export function dequantizeGgml(q: GgmlTensor): Tensor {
  const g = expectGgml(q, 'q');
  return new Tensor(native.ggmlDequantize(handleOf(g.data, 'q.data'), g.type, [...g.shape]));
}

/** {@link dequantizeGgml} on a worker thread. */
export function dequantizeGgmlAsync(q: GgmlTensor): Promise<Tensor> {
  return withCallSite(async () => {
    const g = expectGgml(q, 'q');
    return new Tensor(await native.ggmlDequantizeAsync(handleOf(g.data, 'q.data'), g.type, [...g.shape]));
  });
}

/** Options of {@link ggmlMatmul}. */
export interface GgmlMatmulOptions {
  /** a · dequant(W)ᵀ with a [M, K] (a linear layer's forward). Default false: a [M, N] · dequant(W). */
  transB?: boolean;
  /** The dtype the dequantized values take before the product: 'f32' (default) or 'bf16'. */
  computeDtype?: 'f32' | 'bf16';
}

function matmulArgs(a: Tensor, q: GgmlTensor, options: GgmlMatmulOptions | undefined) {
  const g = expectGgml(q, 'q');
  const o = optionsObject(options);
  const transB = optionalBoolean(o, 'transB', false);
  const computeDtype = o.computeDtype ?? 'f32';
  if (computeDtype !== 'f32' && computeDtype !== 'bf16') fail('option computeDtype', '"f32" or "bf16"', computeDtype, 'E_DTYPE');
  const handle = handleOf(a, 'a');
  const [, inner] = expectMatrix(handle, 'a', transB ? ['f32', 'bf16'] : ['f32']);
  const [n, k] = g.shape;
  if (inner !== (transB ? k : n)) {
    throw new PeftError(`Expected matching inner dimensions for a and q but received a of shape ${shapeString(handle.shape())} and op(W) of shape ${shapeString(transB ? [k, n] : [n, k])}`, 'E_SHAPE');
  }
  return [handle, handleOf(g.data, 'q.data'), g.type, [n, k], { transB, computeDtype }] as Parameters<typeof native.ggmlMatmul>;
}

/**
 * The product with a ggml block weight W [N, K], dequantized a panel at a time inside the product:
 * `a · dequant(W)ᵀ` with `transB` (a [M, K]), else `a · dequant(W)` (a [M, N]).
 * @returns [M, N] with transB, else [M, K], f32.
 */
export function ggmlMatmul(a: Tensor, q: GgmlTensor, options?: GgmlMatmulOptions): Tensor {
  return new Tensor(native.ggmlMatmul(...matmulArgs(a, q, options)));
}

/** {@link ggmlMatmul} on a worker thread. */
export function ggmlMatmulAsync(a: Tensor, q: GgmlTensor, options?: GgmlMatmulOptions): Promise<Tensor> {
  return withCallSite(async () => new Tensor(await native.ggmlMatmulAsync(...matmulArgs(a, q, options))));
}
