/**
 * Writing GGUF files (version 3, little-endian, as ggml's gguf.md specifies): a header, typed
 * metadata, tensor infos (dimensions innermost first) and the tensor data, each tensor starting at
 * a multiple of the alignment (32 unless general.alignment says otherwise). The file is written
 * to a temporary name, flushed and renamed, so a reader never sees half of it.
 * @module
 */

import { PeftError } from '../errors';
import { writeChunksAtomic } from './atomic';
import { GgmlTensor, ggmlFormat } from '../quant/ggml-tensor';
import type { Tensor } from '../tensor';
import { fail } from '../validate';

/** Metadata value types, numbered as in the GGUF specification. */
const VALUE_TYPE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
/** The scalar GGUF value types. */
export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';
type ScalarType = GgufScalarType;

/** A typed metadata value; arrays name their element type (arrays of arrays are not written). */
export type GgufMetadataValue =
  | { type: Exclude<GgufScalarType, 'bool' | 'string' | 'u64' | 'i64'>; value: number }
  | { type: 'u64' | 'i64'; value: number | bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GgufScalarType; value: (number | bigint | boolean | string)[] };

/** ggml type ids of the tensor dtypes written. */
const GGML_TYPE: Record<string, number> = { f32: 0, f16: 1, i32: 26, bf16: 30 };
const DEFAULT_ALIGNMENT = 32;

class HeaderBuilder {
  private chunks: Buffer[] = [];
  length = 0;

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  raw(b: Buffer): void {
    this.push(b);
  }

  scalar(type: ScalarType, value: number | bigint | boolean | string, key: string): void {
    const b = Buffer.alloc(type === 'string' ? 0 : type === 'u64' || type === 'i64' || type === 'f64' ? 8 : type === 'u32' || type === 'i32' || type === 'f32' ? 4 : type === 'u16' || type === 'i16' ? 2 : 1);
    const number = () => {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(`metadata ${key}`, `a finite number (${type})`, value);
      return value;
    };
    const integer = (lo: number, hi: number) => {
      const v = number();
      if (!Number.isInteger(v) || v < lo || v > hi) fail(`metadata ${key}`, `an integer in [${lo}, ${hi}] (${type})`, value, 'E_RANGE');
      return v;
    };
    switch (type) {
      case 'u8': b.writeUInt8(integer(0, 0xff)); break;
      case 'i8': b.writeInt8(integer(-0x80, 0x7f)); break;
      case 'u16': b.writeUInt16LE(integer(0, 0xffff)); break;
      case 'i16': b.writeInt16LE(integer(-0x8000, 0x7fff)); break;
      case 'u32': b.writeUInt32LE(integer(0, 0xffffffff)); break;
      case 'i32': b.writeInt32LE(integer(-0x80000000, 0x7fffffff)); break;
      case 'f32': b.writeFloatLE(number()); break;
      case 'f64': b.writeDoubleLE(number()); break;
      case 'u64': b.writeBigUInt64LE(BigInt(typeof value === 'bigint' ? value : integer(0, Number.MAX_SAFE_INTEGER))); break;
      case 'i64': b.writeBigInt64LE(BigInt(typeof value === 'bigint' ? value : integer(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER))); break;
      case 'bool':
        if (typeof value !== 'boolean') fail(`metadata ${key}`, 'a boolean', value);
        b.writeUInt8(value ? 1 : 0);
        break;
      case 'string':
        if (typeof value !== 'string') fail(`metadata ${key}`, 'a string', value);
        this.string(value);
        return;
      default:
        fail(`metadata ${key}`, `a GGUF value type (${Object.keys(VALUE_TYPE).join(', ')})`, type);
    }
    this.push(b);
  }

  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }

  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }

  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const padding = (offset: number, alignment: number) => (alignment - (offset % alignment)) % alignment;

/** A tensor's ggml type id, dimensions and bytes as the file stores them. */
function storedForm(name: string, t: Tensor | GgmlTensor): { type: number; shape: readonly number[]; bytes: Uint8Array } {
  if (t instanceof GgmlTensor) {
    const raw = t.data.toTypedArray() as Uint8Array;
    return { type: ggmlFormat(t.type).id, shape: t.shape, bytes: raw };
  }
  const type = GGML_TYPE[t.dtype];
  if (type === undefined) fail(`tensors["${name}"]`, 'a tensor of dtype f32, f16, bf16 or i32, or a GgmlTensor', t.dtype, 'E_DTYPE');
  const raw = t.toTypedArray();
  return { type, shape: t.shape, bytes: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) };
}

/**
 * Writes a GGUF file: `metadata` in key order, then `tensors` (f32, f16, bf16 or i32 tensors, or
 * GgmlTensors in a ggml block format) in key order. `general.alignment`, when given as a u32, sets
 * the data alignment.
 */
export function writeGguf(file: string, metadata: Record<string, GgufMetadataValue>, tensors: Record<string, Tensor | GgmlTensor>): void {
  if (typeof file !== 'string' || !file) fail('file', 'a file path', file);
  const alignment = metadata['general.alignment']?.value ?? DEFAULT_ALIGNMENT;
  if (typeof alignment !== 'number' || !Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) {
    fail('metadata general.alignment', 'a positive multiple of 8 (u32)', alignment);
  }
  const entries = Object.entries(tensors);
  const header = new HeaderBuilder();
  header.raw(Buffer.from('GGUF', 'latin1'));
  header.u32(3);
  header.u64(entries.length);
  header.u64(Object.keys(metadata).length);
  for (const [key, entry] of Object.entries(metadata)) {
    if (typeof entry !== 'object' || entry === null || !(entry.type in VALUE_TYPE)) fail(`metadata ${key}`, 'a { type, value } GGUF value', entry);
    header.string(key);
    header.u32(VALUE_TYPE[entry.type]);
    if (entry.type === 'array') {
      if (!(entry.itemType in VALUE_TYPE) || entry.itemType === ('array' as string)) fail(`metadata ${key}.itemType`, 'a scalar GGUF value type', entry.itemType);
      if (!Array.isArray(entry.value)) fail(`metadata ${key}`, 'an array', entry.value);
      header.u32(VALUE_TYPE[entry.itemType]);
      header.u64(entry.value.length);
      entry.value.forEach((v, i) => header.scalar(entry.itemType, v, `${key}[${i}]`));
    } else {
      header.scalar(entry.type, entry.value, key);
    }
  }
  let offset = 0;
  const data: Uint8Array[] = [];
  for (const [name, t] of entries) {
    const { type, shape, bytes } = storedForm(name, t);
    header.string(name);
    header.u32(shape.length);
    for (const dim of [...shape].reverse()) header.u64(dim); // innermost first
    header.u32(type);
    header.u64(offset);
    data.push(bytes);
    offset += bytes.length + padding(bytes.length, alignment);
  }
  header.raw(Buffer.alloc(padding(header.length, alignment)));
  writeChunksAtomic(file, [header.bytes(), ...data.flatMap((d) => [d, Buffer.alloc(padding(d.length, alignment))])]);
}
