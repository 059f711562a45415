/**
 * An independent safetensors reader and writer for tests, written in JS from the published format
 * (8-byte little-endian header length, JSON header, raw little-endian data). Shares no code with
 * native/io.
 */
import * as fs from 'node:fs';

export interface JsTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export function parseSafetensors(file: string): { header: Record<string, any>; tensors: Map<string, JsTensor> } {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const data = buf.subarray(8 + n);
  const tensors = new Map<string, JsTensor>();
  for (const [name, v] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = v.data_offsets;
    tensors.set(name, { dtype: v.dtype, shape: v.shape, bytes: new Uint8Array(data.subarray(b, e)) });
  }
  return { header, tensors };
}

/** Writes entries in the given order, optionally with padding between tensors' data and header spaces. */
export function writeSafetensorsJs(
  file: string,
  entries: [string, JsTensor][],
  metadata?: Record<string, string>,
  options: { reverseData?: boolean } = {},
): void {
  const order = options.reverseData ? [...entries].reverse() : entries;
  const offsets = new Map<string, [number, number]>();
  let offset = 0;
  for (const [name, t] of order) {
    offsets.set(name, [offset, offset + t.bytes.length]);
    offset += t.bytes.length;
  }
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  for (const [name, t] of entries) header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: offsets.get(name) };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, ...order.map(([, t]) => Buffer.from(t.bytes))]));
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
