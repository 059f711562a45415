/**
 * A 4-bit tensor in bitsandbytes' layout: the packed codes, the per-block scales (plain or
 * double-quantized), the code table and what is needed to restore the original.
 */
import { PeftError } from '../errors';
import type { NativeQuant4 } from '../native';
import { handleOf, type Tensor } from '../tensor';

/** The two 4-bit data types of bitsandbytes. */
export type QuantType = 'nf4' | 'fp4';

/** Element types a 4-bit tensor can come from (and be restored to). */
export type QuantSourceDType = 'f32' | 'bf16' | 'f16';

/** The double quantization of the block scales (bitsandbytes' nested quant state). */
export interface NestedQuantState {
  /** f32 [ceil(blocks / blocksize)]: one absmax per block of scales. */
  readonly absmax: Tensor;
  /** f32 [256]: the signed 8-bit dynamic map the scales were quantized with. */
  readonly quant_map: Tensor;
  /** Scales per nested block (bitsandbytes uses 256). */
  readonly blocksize: number;
  /** The mean of the original scales, added back after dequantizing them. */
  readonly offset: number;
}

/** The parts of a {@link QuantizedTensor}. */
export interface QuantizedTensorParts {
  data: Tensor;
  absmax: Tensor;
  quant_map: Tensor;
  nested: NestedQuantState | null;
  shape: number[];
  dtype: QuantSourceDType;
  blocksize: number;
  quant_type: QuantType;
}

/**
 * A tensor quantized to 4 bits exactly as bitsandbytes stores it: blocks of `blocksize` elements
 * over the row-major flattened tensor, element 2j in the high nibble of byte j and 2j+1 in the low
 * nibble, one f32 absmax per block. Create one with {@link quantize} or {@link readBnbQuantized};
 * restore it with {@link dequantize}.
 */
export class QuantizedTensor {
  /** u8 [ceil(n / 2)] packed codes ([ceil(n / 2), 1] when read from a bitsandbytes file). */
  readonly data: Tensor;
  /** f32 [blocks] scales, or u8 [blocks] codes of them when {@link QuantizedTensor.nested} is set. */
  readonly absmax: Tensor;
  /** f32 [16]: the code table (bitsandbytes' quant_map). */
  readonly quant_map: Tensor;
  /** How the scales were double-quantized, or null. */
  readonly nested: NestedQuantState | null;
  /** The original tensor's shape. */
  readonly shape: readonly number[];
  /** The original tensor's dtype. */
  readonly dtype: QuantSourceDType;
  /** Elements per block (a power of two in [32, 4096]). */
  readonly blocksize: number;
  readonly quant_type: QuantType;

  /** @internal Use {@link quantize} or {@link readBnbQuantized}. */
  constructor(parts: QuantizedTensorParts) {
    this.data = parts.data;
    this.absmax = parts.absmax;
    this.quant_map = parts.quant_map;
    this.nested = parts.nested;
    this.shape = Object.freeze([...parts.shape]);
    this.dtype = parts.dtype;
    this.blocksize = parts.blocksize;
    this.quant_type = parts.quant_type;
  }

  /** Number of elements of the original tensor. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Whether the block scales are double-quantized (bitsandbytes' compress_statistics). */
  get double_quant(): boolean {
    return this.nested !== null;
  }

  /** Bytes this tensor stores (codes, scales, nested scales and both code tables). */
  get nbytes(): number {
    const parts = [this.data, this.absmax, this.quant_map];
    if (this.nested) parts.push(this.nested.absmax, this.nested.quant_map);
    return parts.reduce((sum, t) => sum + t.size * (t.dtype === 'u8' ? 1 : 4), 0);
  }

  /** Stored bits per element, code tables excluded (4.127 with double quantization and blocksize 64). */
  get bitsPerParameter(): number {
    const tables = 16 * 4 + (this.nested ? 256 * 4 : 0);
    return this.size === 0 ? 0 : ((this.nbytes - tables) * 8) / this.size;
  }

  /** Frees the native memory of every part now. */
  dispose(): void {
    this.data.dispose();
    this.absmax.dispose();
    this.quant_map.dispose();
    this.nested?.absmax.dispose();
    this.nested?.quant_map.dispose();
  }

  /** @internal */
  toString(): string {
    return `QuantizedTensor(${this.quant_type}, [${this.shape.join(', ')}], ${this.dtype}, blocksize ${this.blocksize}${this.nested ? ', double-quantized' : ''})`;
  }
}

/** @internal The native form of q (the binding checks every size again). */
export function nativeQuant4(q: unknown, argument: string): NativeQuant4 {
  if (!(q instanceof QuantizedTensor)) {
    throw new PeftError(`Expected a QuantizedTensor (from quantize() or readBnbQuantized()) for ${argument}`, 'E_ARGUMENT');
  }
  const parts: NativeQuant4 = {
    data: handleOf(q.data, `${argument}.data`),
    absmax: handleOf(q.absmax, `${argument}.absmax`),
    quantMap: handleOf(q.quant_map, `${argument}.quant_map`),
    blocksize: q.blocksize,
  };
  if (q.nested) {
    parts.nestedAbsmax = handleOf(q.nested.absmax, `${argument}.nested.absmax`);
    parts.nestedQuantMap = handleOf(q.nested.quant_map, `${argument}.nested.quant_map`);
    parts.nestedBlocksize = q.nested.blocksize;
    parts.offset = q.nested.offset;
  }
  return parts;
}
