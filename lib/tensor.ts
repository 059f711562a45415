/**
 * Tensors: n-dimensional arrays in native memory. Their memory is reported to V8 and released by
 * the garbage collector, or at once by {@link Tensor.dispose}.
 */
import { checkDType, type DType, type RawArray } from './dtype';
import { PeftError } from './errors';
import { native, type NativeTensor } from './native';
import { fail } from './validate';

/** Nested arrays of numbers, e.g. `[[1, 2], [3, 4]]`. */
export type NestedArray = number | NestedArray[];

/** What {@link tensor} accepts as values. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint8Array
  | Uint16Array
  | Int8Array
  | Int16Array
  | Uint32Array
  | NestedArray[];

const disposeSymbol: symbol = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose');

/** An n-dimensional array held in native memory. Create one with {@link tensor}. */
export class Tensor {
  /** @internal */
  readonly handle: NativeTensor;

  /** @internal Use {@link tensor} to create tensors. */
  constructor(handle: NativeTensor) {
    if (!(handle instanceof native.NativeTensor)) {
      fail('the Tensor constructor', 'a native tensor handle (create tensors with tensor() or zeros())', handle);
    }
    this.handle = handle;
  }

  /** The handle, or E_DISPOSED naming the member that was used. */
  private live(member: string): NativeTensor {
    if (this.handle.disposed()) {
      throw new PeftError(`Tensor was disposed and cannot be used (Tensor.${member})`, 'E_DISPOSED');
    }
    return this.handle;
  }

  /** Dimensions, outermost first. */
  get shape(): number[] {
    return this.live('shape').shape();
  }

  /** Element type. */
  get dtype(): DType {
    return this.live('dtype').dtype();
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** True once {@link Tensor.dispose} has run. */
  get disposed(): boolean {
    return this.handle.disposed();
  }

  /** A copy of the values as float32 (exact for every dtype but i32 beyond 2^24). */
  toFloat32Array(): Float32Array {
    return this.live('toFloat32Array()').toFloat32Array();
  }

  /** A copy of the raw values: Float32Array, Uint16Array (bf16/f16 bit patterns), Int32Array or Uint8Array. */
  toTypedArray(): RawArray {
    return this.live('toTypedArray()').toTypedArray() as RawArray;
  }

  /** The values as nested arrays of numbers, shaped like the tensor. */
  toArray(): NestedArray {
    this.live('toArray()');
    const flat = this.dtype === 'i32' || this.dtype === 'u8' ? this.toTypedArray() : this.toFloat32Array();
    const shape = this.shape;
    if (shape.length === 0) return flat[0];
    let offset = 0;
    const build = (dim: number): NestedArray[] => {
      const out: NestedArray[] = [];
      for (let i = 0; i < shape[dim]; i++) {
        out.push(dim === shape.length - 1 ? flat[offset++] : build(dim + 1));
      }
      return out;
    };
    return build(0);
  }

  /** A new tensor with the values converted to `dtype` (bf16/f16: round to nearest even). */
  to(dtype: DType): Tensor {
    const handle = this.live('to()');
    return new Tensor(handle.to(checkDType(dtype)));
  }

  /** Frees the native memory now. Later use throws `E_DISPOSED`. Safe to call twice. */
  dispose(): void {
    this.handle.dispose();
  }

  [disposeSymbol](): void {
    this.dispose();
  }

  /** @internal */
  toString(): string {
    return `Tensor(${this.disposed ? 'disposed' : `[${this.shape.join(', ')}], ${this.dtype}`})`;
  }
}

/** @internal The native handle of a tensor argument, or a clear error naming the argument. */
export function handleOf(value: unknown, argument: string): NativeTensor {
  if (!(value instanceof Tensor) || !(value.handle instanceof native.NativeTensor)) fail(argument, 'a Tensor', value);
  if (value.disposed) throw new PeftError(`Tensor ${argument} was disposed and cannot be used`, 'E_DISPOSED');
  return value.handle;
}

function isTypedArray(value: unknown): value is Exclude<TensorData, NestedArray[]> {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

/** Deepest nesting that tensor() infers a shape from (deeper is surely a cycle or a mistake). */
const MAX_NESTED_DIMS = 64;

/** Shape and flat values of a rectangular nested array. */
function flattenNested(data: NestedArray[]): { shape: number[]; values: number[] } {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    if (shape.length === MAX_NESTED_DIMS) {
      fail('tensor data', `nested arrays at most ${MAX_NESTED_DIMS} levels deep (is an array nested in itself?)`, data, 'E_SHAPE');
    }
    shape.push(level.length);
    level = level[0];
    if (level === undefined) break;
  }
  const values: number[] = [];
  const walk = (node: NestedArray, dim: number, path: string): void => {
    if (dim === shape.length) {
      if (Array.isArray(node)) {
        fail(`tensor data${path}`, 'a number (nested arrays must be rectangular, with the same depth everywhere)', node, 'E_SHAPE');
      }
      if (typeof node !== 'number') fail(`tensor data${path}`, 'a number', node);
      values.push(node);
      return;
    }
    if (!Array.isArray(node) || node.length !== shape[dim]) {
      fail(`tensor data${path}`, `an array of length ${shape[dim]} (nested arrays must be rectangular)`, node, 'E_SHAPE');
    }
    // A plain loop, not forEach: holes in sparse arrays are reported, not skipped.
    for (let i = 0; i < node.length; i++) walk(node[i], dim + 1, `${path}[${i}]`);
  };
  walk(data, 0, '');
  return { shape, values };
}

function checkShape(shape: unknown): number[] {
  if (!Array.isArray(shape)) fail('shape', 'an array of non-negative integers', shape, 'E_SHAPE');
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      fail(`shape[${i}]`, 'a non-negative integer', d, 'E_SHAPE');
    }
    if (d > Number.MAX_SAFE_INTEGER) fail(`shape[${i}]`, 'a dimension below 2^53', d, 'E_SHAPE');
  });
  return shape as number[];
}

function defaultDType(data: unknown): DType {
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Uint8Array) return 'u8';
  if (data instanceof Uint16Array) {
    throw new PeftError(
      'Expected a dtype (bf16 or f16) for Uint16Array data but received none: the bit patterns are ambiguous',
      'E_DTYPE',
    );
  }
  return 'f32';
}

function integerArray(values: ArrayLike<number>, dtype: 'i32' | 'u8'): Int32Array | Uint8Array {
  const [lo, hi] = dtype === 'i32' ? [-2147483648, 2147483647] : [0, 255];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < lo || v > hi) {
      fail(`tensor data[${i}]`, `an integer in [${lo}, ${hi}] (dtype ${dtype})`, v, 'E_RANGE');
    }
  }
  return dtype === 'i32' ? Int32Array.from(values) : Uint8Array.from(values);
}

/**
 * Creates a tensor.
 * @param data Values: a TypedArray (flat, row-major) or nested arrays of numbers.
 * @param shape Dimensions; optional for nested arrays (inferred), required to reshape flat data.
 *   A flat TypedArray without a shape becomes 1-D.
 * @param dtype Element type; defaults to f32, i32 for Int32Array, u8 for Uint8Array.
 *   A Uint16Array is taken as raw bf16 or f16 bit patterns and needs an explicit dtype.
 * @example
 * const x = tensor([[1, 2, 3], [4, 5, 6]]);            // f32 [2, 3]
 * const w = tensor(new Float32Array(6), [3, 2], 'bf16'); // converted with round-to-nearest-even
 */
export function tensor(data: TensorData, shape?: number[], dtype?: DType): Tensor {
  const target = dtype === undefined ? defaultDType(data) : checkDType(dtype);
  let values: ArrayLike<number>;
  let inferred: number[];
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    fail('tensor data', 'a TypedArray of numbers (BigInt64Array and BigUint64Array are not supported)', data, 'E_DTYPE');
  }
  if (isTypedArray(data)) {
    values = data;
    inferred = [data.length];
  } else if (Array.isArray(data)) {
    const flat = flattenNested(data);
    values = flat.values;
    inferred = flat.shape;
  } else {
    fail('tensor data', 'a TypedArray or nested arrays of numbers', data);
  }
  const dims = shape === undefined ? inferred : checkShape(shape);
  const numel = dims.reduce((a, b) => a * b, 1);
  if (numel !== values.length) {
    throw new PeftError(
      `Expected ${numel} values for shape [${dims.join(', ')}] but received ${values.length}`,
      'E_SHAPE',
    );
  }

  // Hand the native side an array whose element type is one of ours; it converts from there.
  let source: ArrayBufferView;
  let sourceDtype: DType;
  if (data instanceof Uint16Array) {
    if (target !== 'bf16' && target !== 'f16') {
      fail('dtype', 'bf16 or f16 (Uint16Array data holds raw 16-bit patterns)', target, 'E_DTYPE');
    }
    source = data;
    sourceDtype = target;
  } else if (target === 'i32' || target === 'u8') {
    source = data instanceof (target === 'i32' ? Int32Array : Uint8Array) ? data : integerArray(values, target);
    sourceDtype = target;
  } else {
    source = data instanceof Float32Array ? data : Float32Array.from(values);
    sourceDtype = 'f32';
  }
  return new Tensor(new native.NativeTensor(source, sourceDtype, dims, target));
}

/** A tensor of zeros. */
export function zeros(shape: number[], dtype: DType = 'f32'): Tensor {
  return new Tensor(new native.NativeTensor(null, 'f32', checkShape(shape), checkDType(dtype)));
}
