/**
 * GGUF files (versions 2 and 3, as llama.cpp writes them): metadata, tensor infos and tensors.
 * The file is memory-mapped; F32, F16, BF16 and I32 tensors are zero-copy views of it, tensors in
 * ggml's block formats (Q4_0 … Q8_0, Q2_K … Q6_K, IQ4_NL, IQ4_XS) are dequantized to f32 by
 * {@link GgufFile.tensor} or kept as stored by {@link GgufFile.blocks}. Bad files raise a PeftError (`E_IO`, `E_FORMAT`,
 * `E_UNSUPPORTED`) that names the file, the field and the numbers.
 * @module
 */
import { PeftError, withCallSite } from '../errors';
import { native, type NativeGgufReader } from '../native';
import { Tensor } from '../tensor';
import { fail } from '../validate';

/**
 * A metadata value: integers and floats as numbers (64-bit integers beyond 2^53 as bigints),
 * booleans, strings, and arrays of these (arrays of arrays too).
 */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** ggml tensor type names, as in ggml.h (`F32`, `F16`, `BF16`, `Q8_0`, `Q4_0`, `Q4_K`, ...). */
export type GgmlTypeName = string;

/** Where a tensor lives in the file and what it holds. */
export interface GgufTensorInfo {
  readonly name: string;
  /** Dimensions, outermost first (GGUF lists them innermost first; they are reversed here). */
  readonly shape: readonly number[];
  /** The ggml type of the stored bytes. */
  readonly type: GgmlTypeName;
  /** Byte offset from the start of the data section. */
  readonly offset: number;
  /** Bytes the tensor takes in the file. */
  readonly nbytes: number;
}

const disposeSymbol: symbol = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose');

/** An open GGUF file. Create one with {@link readGguf}. */
export class GgufFile {
  /** The path it was opened from. */
  readonly path: string;
  /** The GGUF version: 2 or 3. */
  readonly version: number;
  /** Alignment of the tensor data in bytes (`general.alignment`, 32 by default). */
  readonly alignment: number;
  /** Metadata by key, in file order. */
  readonly metadata: Readonly<Record<string, GgufValue>>;
  /** Each metadata key's stored type: `u8` … `f64`, `bool`, `string`, `array<u32>`, `array<array<u8>>`, ... */
  readonly metadataTypes: Readonly<Record<string, string>>;
  /** The tensors, in file order. */
  readonly tensorInfos: readonly GgufTensorInfo[];
  private reader: NativeGgufReader | null;

  /** @internal Use {@link readGguf}. */
  constructor(path: string) {
    this.reader = new native.GgufReader(path);
    const info = this.reader.info();
    this.path = path;
    this.version = info.version;
    this.alignment = info.alignment;
    this.metadata = Object.freeze(info.metadata);
    this.metadataTypes = Object.freeze(info.types);
    this.tensorInfos = Object.freeze(info.tensors.map((t) => Object.freeze({ ...t, shape: Object.freeze(t.shape) })));
  }

  private live(member: string): NativeGgufReader {
    if (this.reader === null) {
      throw new PeftError(`GGUF file ${this.path} was disposed and cannot be used (GgufFile.${member})`, 'E_DISPOSED');
    }
    return this.reader;
  }

  /**
   * The tensor called `name`: a view of the file for F32 / F16 / BF16 / I32 (dtype f32 / f16 / bf16 /
   * i32), dequantized f32 for the ggml block types. `E_ARGUMENT` for an unknown name, `E_UNSUPPORTED` for
   * another ggml type.
   */
  tensor(name: string): Tensor {
    const reader = this.live('tensor()');
    if (typeof name !== 'string') fail('name', 'a tensor name (a string)', name);
    return new Tensor(reader.load(name));
  }

  /**
   * The stored bytes of a tensor in a ggml block format (Q4_0 … Q6_K, IQ4_NL, IQ4_XS): u8 [nbytes],
   * a zero-copy view of the file. `checkFinite` (default true): `E_NONFINITE` when a block scale is
   * NaN or infinite. `E_UNSUPPORTED` for other types.
   */
  blocks(name: string, checkFinite = true): Tensor {
    const reader = this.live('blocks()');
    if (typeof name !== 'string') fail('name', 'a tensor name (a string)', name);
    return new Tensor(reader.loadBlocks(name, checkFinite));
  }

  /** {@link GgufFile.tensor} off the event loop (dequantizing a large tensor takes a while). */
  async tensorAsync(name: string): Promise<Tensor> {
    const reader = this.live('tensorAsync()');
    if (typeof name !== 'string') fail('name', 'a tensor name (a string)', name);
    return new Tensor(await withCallSite(() => reader.loadAsync(name)));
  }

  /** @internal Whether `t` is a zero-copy view of this file's bytes. */
  isView(t: Tensor): boolean {
    return this.live('isView()').isView(t.handle);
  }

  /**
   * Releases this handle on the file. Tensors already loaded stay valid (views keep the mapping
   * alive until they are disposed or collected). Safe to call twice.
   */
  dispose(): void {
    this.reader?.close();
    this.reader = null;
  }

  [disposeSymbol](): void {
    this.dispose();
  }
}

/**
 * Opens and parses a GGUF file. `E_IO` when it cannot be read, `E_FORMAT` for a malformed file
 * (truncated, a count or length that does not fit, tensor data past the end, overlapping or
 * misaligned tensors, version other than 2 or 3), `E_UNSUPPORTED` for a ggml type id this reader
 * does not know.
 */
export function readGguf(path: string): GgufFile {
  if (typeof path !== 'string' || path.length === 0) fail('path', 'a file path (a non-empty string)', path);
  return new GgufFile(path);
}
