'use strict';
// A streaming GGUF v3 writer (ggml's docs/gguf.md): header, metadata and tensor infos first, then
// each tensor's bytes, produced one at a time so a model of hundreds of MB never sits in memory
// whole. Written to a temporary file, fsynced and renamed, so a failed run leaves nothing behind.
const fs = require('node:fs');

const VALUE_TYPE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 };
/** ggml tensor types: id, elements per block and bytes per block. */
const GGML_TYPE = {
  F32: { id: 0, block: 1, bytes: 4 }, F16: { id: 1, block: 1, bytes: 2 }, Q4_0: { id: 2, block: 32, bytes: 18 },
  Q4_1: { id: 3, block: 32, bytes: 20 }, Q5_0: { id: 6, block: 32, bytes: 22 }, Q5_1: { id: 7, block: 32, bytes: 24 },
  Q8_0: { id: 8, block: 32, bytes: 34 }, Q2_K: { id: 10, block: 256, bytes: 84 }, Q3_K: { id: 11, block: 256, bytes: 110 },
  Q4_K: { id: 12, block: 256, bytes: 144 }, Q5_K: { id: 13, block: 256, bytes: 176 }, Q6_K: { id: 14, block: 256, bytes: 210 },
  IQ4_NL: { id: 20, block: 32, bytes: 18 }, IQ4_XS: { id: 23, block: 256, bytes: 136 }, BF16: { id: 30, block: 1, bytes: 2 },
};
const ALIGNMENT = 32;

class Bytes {
  constructor() {
    this.chunks = [];
    this.length = 0;
  }
  push(buf) {
    this.chunks.push(buf);
    this.length += buf.length;
  }
  u32(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  scalar(type, v) {
    const sizes = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 };
    if (type === 'string') return this.string(v);
    const b = Buffer.alloc(sizes[type]);
    if (type === 'u8') b.writeUInt8(v);
    else if (type === 'i8') b.writeInt8(v);
    else if (type === 'bool') b.writeUInt8(v ? 1 : 0);
    else if (type === 'u16') b.writeUInt16LE(v);
    else if (type === 'i16') b.writeInt16LE(v);
    else if (type === 'u32') b.writeUInt32LE(v);
    else if (type === 'i32') b.writeInt32LE(v);
    else if (type === 'f32') b.writeFloatLE(v);
    else if (type === 'f64') b.writeDoubleLE(v);
    else if (type === 'u64') b.writeBigUInt64LE(BigInt(v));
    else if (type === 'i64') b.writeBigInt64LE(BigInt(v));
    else throw new Error(`unknown GGUF value type ${type}`);
    this.push(b);
  }
  buffer() {
    return Buffer.concat(this.chunks);
  }
}

/**
 * Writes `file`. metadata: [key, { type, value }] or, for arrays, [key, { type: 'array', elem, value }];
 * tensors: { name, shape (outermost first), type: a GGML_TYPE name, bytes: () => Uint8Array }.
 */
function writeGgufFile(file, metadata, tensors) {
  const head = new Bytes();
  head.push(Buffer.from('GGUF', 'latin1'));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.length);
  for (const [key, v] of metadata) {
    head.string(key);
    head.u32(VALUE_TYPE[v.type]);
    if (v.type === 'array') {
      head.u32(VALUE_TYPE[v.elem]);
      head.u64(v.value.length);
      for (const item of v.value) head.scalar(v.elem, item);
    } else {
      head.scalar(v.type, v.value);
    }
  }
  let offset = 0;
  const sizes = [];
  for (const t of tensors) {
    const size = (t.shape.reduce((a, b) => a * b, 1) / GGML_TYPE[t.type].block) * GGML_TYPE[t.type].bytes;
    head.string(t.name);
    head.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) head.u64(t.shape[d]); // innermost first
    head.u32(GGML_TYPE[t.type].id);
    head.u64(offset);
    sizes.push(size);
    offset = Math.ceil((offset + size) / ALIGNMENT) * ALIGNMENT;
  }
  const pad = (n) => Buffer.alloc((ALIGNMENT - (n % ALIGNMENT)) % ALIGNMENT);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const header = head.buffer();
    fs.writeSync(fd, header);
    fs.writeSync(fd, pad(header.length));
    tensors.forEach((t, i) => {
      const bytes = t.bytes();
      if (bytes.length !== sizes[i]) throw new Error(`${t.name}: ${bytes.length} bytes for a ${t.type} tensor of shape [${t.shape}] (expected ${sizes[i]})`);
      fs.writeSync(fd, bytes);
      fs.writeSync(fd, pad(bytes.length));
    });
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

module.exports = { writeGgufFile };
