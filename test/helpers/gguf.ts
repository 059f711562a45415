/**
 * A small GGUF writer and reader for tests, written from the published format (ggml's docs/gguf.md)
 * and independent of the native reader: little-endian; magic "GGUF", u32 version, u64 tensor count,
 * u64 metadata count; metadata as (string key, u32 value type, value); tensor infos as (string name,
 * u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset); the data section starts at
 * the next multiple of general.alignment (32 by default). Strings are a u64 length and UTF-8 bytes;
 * arrays are a u32 element type, a u64 length and the elements (an element that is itself an array
 * is again element type, length, elements).
 */

/** Metadata value types, numbered as in the specification. */
export const VALUE_TYPES = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;
export type ValueTypeName = keyof typeof VALUE_TYPES;

/** ggml tensor types used in tests: id, elements per block, bytes per block. */
export const GGML = {
  F32: { id: 0, block: 1, bytes: 4 },
  F16: { id: 1, block: 1, bytes: 2 },
  Q4_0: { id: 2, block: 32, bytes: 18 },
  Q8_0: { id: 8, block: 32, bytes: 34 },
  Q4_K: { id: 12, block: 256, bytes: 144 },
  IQ2_XXS: { id: 16, block: 256, bytes: 66 },
  I32: { id: 26, block: 1, bytes: 4 },
  BF16: { id: 30, block: 1, bytes: 2 },
} as const;

/** A typed metadata value. Arrays name their element type; elements of an array of arrays are arrays. */
export type MetaValue =
  | { type: Exclude<ValueTypeName, 'array' | 'string' | 'bool' | 'u64' | 'i64'>; value: number }
  | { type: 'u64' | 'i64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; elem: ValueTypeName; value: unknown[] };

export interface TensorSpec {
  name: string;
  /** Outermost first, as the reader reports it (written reversed, innermost first). */
  shape: number[];
  type: number;
  data: Uint8Array;
  /** Overrides the data offset (relative to the data section) written in the tensor info. */
  offset?: number;
}

export interface GgufSpec {
  version?: number;
  metadata?: [string, MetaValue][];
  tensors?: TensorSpec[];
  /** Alignment used to place the data; written as general.alignment (u32) only when set here. */
  alignment?: number;
}

/** Where the fields of a written file are, for tests that corrupt them. */
export interface GgufLayout {
  tensorCount: number;
  kvCount: number;
  kv: { key: number; type: number; value: number }[];
  tensors: { name: number; nDims: number; dims: number; type: number; offset: number }[];
  dataStart: number;
}

class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    bigger.set(this.buf);
    this.buf = bigger;
    this.view = new DataView(bigger.buffer);
  }
  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length++, v);
  }
  i8(v: number): void {
    this.reserve(1);
    this.view.setInt8(this.length++, v);
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  u64(v: bigint | number): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  i64(v: bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, v, true);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  padTo(alignment: number): void {
    while (this.length % alignment !== 0) this.u8(0);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function writeScalar(w: ByteWriter, type: ValueTypeName, value: unknown): void {
  switch (type) {
    case 'u8': return w.u8(value as number);
    case 'i8': return w.i8(value as number);
    case 'u16': return w.u16(value as number);
    case 'i16': return w.i16(value as number);
    case 'u32': return w.u32(value as number);
    case 'i32': return w.i32(value as number);
    case 'f32': return w.f32(value as number);
    case 'f64': return w.f64(value as number);
    case 'u64': return w.u64(value as bigint);
    case 'i64': return w.i64(value as bigint);
    case 'bool': return w.u8(value ? 1 : 0);
    case 'string': return w.string(value as string);
    case 'array': throw new Error('not a scalar');
  }
}

/** An array's body: element type, length, elements. Elements of an array of arrays are MetaValue arrays. */
function writeArray(w: ByteWriter, elem: ValueTypeName, values: unknown[]): void {
  w.u32(VALUE_TYPES[elem]);
  w.u64(values.length);
  for (const v of values) {
    if (elem === 'array') {
      const inner = v as { elem: ValueTypeName; value: unknown[] };
      writeArray(w, inner.elem, inner.value);
    } else {
      writeScalar(w, elem, v);
    }
  }
}

/** Writes a GGUF file; tensors are placed in order, each at the next multiple of the alignment. */
export function writeGguf(spec: GgufSpec): { bytes: Uint8Array; layout: GgufLayout } {
  const alignment = spec.alignment ?? 32;
  const metadata = [...(spec.metadata ?? [])];
  if (spec.alignment !== undefined) metadata.push(['general.alignment', { type: 'u32', value: spec.alignment }]);
  const tensors = spec.tensors ?? [];
  const w = new ByteWriter();
  const layout: GgufLayout = { tensorCount: 8, kvCount: 16, kv: [], tensors: [], dataStart: 0 };
  w.bytes(Buffer.from('GGUF', 'latin1'));
  w.u32(spec.version ?? 3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, v] of metadata) {
    const at = { key: w.length, type: 0, value: 0 };
    w.string(key);
    at.type = w.length;
    w.u32(VALUE_TYPES[v.type]);
    at.value = w.length;
    if (v.type === 'array') writeArray(w, v.elem, v.value);
    else writeScalar(w, v.type, v.value);
    layout.kv.push(at);
  }
  let cursor = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(t.offset ?? cursor);
    cursor = Math.ceil((cursor + t.data.length) / alignment) * alignment;
  }
  tensors.forEach((t, k) => {
    const at = { name: w.length, nDims: 0, dims: 0, type: 0, offset: 0 };
    w.string(t.name);
    at.nDims = w.length;
    w.u32(t.shape.length);
    at.dims = w.length;
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]);
    at.type = w.length;
    w.u32(t.type);
    at.offset = w.length;
    w.u64(offsets[k]);
    layout.tensors.push(at);
  });
  w.padTo(alignment);
  layout.dataStart = w.length;
  tensors.forEach((t, k) => {
    while (w.length < layout.dataStart + offsets[k]) w.u8(0);
    w.bytes(t.data);
  });
  if (tensors.length) w.padTo(alignment);
  return { bytes: w.result(), layout };
}

// ---------------------------------------------------------------------------------------------
// An independent reader of the same format, for cross-checking the native one on real files.

export interface ParsedGguf {
  version: number;
  metadata: Map<string, { type: string; value: unknown }>;
  tensors: { name: string; shape: number[]; type: number; offset: number }[];
  dataStart: number;
  /** Offsets of every u32 and u64 field read (version, counts, types, lengths, dimensions, offsets). */
  fields: { u32: number[]; u64: number[] };
}

export function parseGguf(bytes: Uint8Array): ParsedGguf {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fields: ParsedGguf['fields'] = { u32: [], u64: [] };
  let p = 0;
  const u32 = () => (fields.u32.push(p), (p += 4), view.getUint32(p - 4, true));
  const u64 = () => (fields.u64.push(p), (p += 8), view.getBigUint64(p - 8, true));
  const str = () => {
    const n = Number(u64());
    p += n;
    return Buffer.from(bytes.buffer, bytes.byteOffset + p - n, n).toString('utf8');
  };
  const NAMES = Object.keys(VALUE_TYPES) as ValueTypeName[];
  const value = (type: number): unknown => {
    switch (NAMES[type]) {
      case 'u8': return view.getUint8((p += 1) - 1);
      case 'i8': return view.getInt8((p += 1) - 1);
      case 'u16': return view.getUint16((p += 2) - 2, true);
      case 'i16': return view.getInt16((p += 2) - 2, true);
      case 'u32': return u32();
      case 'i32': return view.getInt32((p += 4) - 4, true);
      case 'f32': return view.getFloat32((p += 4) - 4, true);
      case 'f64': return view.getFloat64((p += 8) - 8, true);
      case 'u64': return u64();
      case 'i64': return view.getBigInt64((p += 8) - 8, true);
      case 'bool': return view.getUint8((p += 1) - 1) !== 0;
      case 'string': return str();
      case 'array': {
        const elem = u32();
        const n = Number(u64());
        const out: unknown[] = [];
        for (let i = 0; i < n; i++) out.push(value(elem));
        return out;
      }
      default: throw new Error(`bad value type ${type}`);
    }
  };
  if (Buffer.from(bytes.subarray(0, 4)).toString('latin1') !== 'GGUF') throw new Error('not GGUF');
  p = 4;
  const version = u32();
  const nTensors = Number(u64());
  const nKv = Number(u64());
  const metadata = new Map<string, { type: string; value: unknown }>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const type = u32();
    metadata.set(key, { type: NAMES[type], value: value(type) });
  }
  const tensors: ParsedGguf['tensors'] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nDims = u32();
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(Number(u64()));
    const type = u32();
    const offset = Number(u64());
    tensors.push({ name, shape: ne.reverse(), type, offset });
  }
  const alignment = Number(metadata.get('general.alignment')?.value ?? 32);
  return { version, metadata, tensors, dataStart: Math.ceil(p / alignment) * alignment, fields };
}

// ---------------------------------------------------------------------------------------------
// Half-precision formats, decoded from their definitions.

/** IEEE binary16 bits to a number. */
export function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits to a number (the top half of a float32). */
export function bf16ToNumber(h: number): number {
  const u = new Uint32Array([h << 16]);
  return new Float32Array(u.buffer)[0];
}

/** Bytes of a Uint16Array / Float32Array / Int32Array, little-endian (as this machine stores them). */
export function bytesOf(a: Uint16Array | Float32Array | Int32Array | Int8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
}
