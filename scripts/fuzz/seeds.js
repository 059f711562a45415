'use strict';
// Seed inputs for the libFuzzer targets, made at fuzz time from the real model files (which are
// never copied into the repository) plus small hand-made files: every seed is small (under the
// targets' max_len) so that mutations land in headers, not in megabytes of weights.
const fs = require('node:fs');
const path = require('node:path');

// ---- GGUF (ggml's docs/gguf.md): little-endian; strings are a u64 length and bytes ---------------

const SCALAR_BYTES = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const STRING = 8;
const ARRAY = 9;

/** Offsets of a GGUF file's parts: metadata bytes, tensor infos and the data section. */
function walkGguf(buf) {
  let at = 0;
  const u32 = () => ((at += 4), buf.readUInt32LE(at - 4));
  const u64 = () => ((at += 8), Number(buf.readBigUInt64LE(at - 8)));
  const str = () => {
    const n = u64();
    at += n;
    return buf.toString('utf8', at - n, at);
  };
  const skipValue = (type) => {
    if (type === STRING) return void str();
    if (type !== ARRAY) return void (at += SCALAR_BYTES[type]);
    const elem = u32();
    const n = u64();
    for (let i = 0; i < n; i++) skipValue(elem);
  };
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error('not a GGUF file');
  at = 4;
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const metaStart = at;
  let alignment = 32;
  for (let k = 0; k < nKv; k++) {
    const key = str();
    const type = u32();
    if (key === 'general.alignment') alignment = buf.readUInt32LE(at);
    skipValue(type);
  }
  const metaEnd = at;
  const tensors = [];
  for (let k = 0; k < nTensors; k++) {
    const name = str();
    const ne = Array.from({ length: u32() }, u64);
    tensors.push({ name, ne, type: u32(), offset: u64() });
  }
  const dataStart = Math.ceil(at / alignment) * alignment;
  return { version, nKv, metadata: buf.subarray(metaStart, metaEnd), tensors, dataStart };
}

/** A GGUF v3 file: `metadata` is raw KV bytes holding `nKv` entries; tensors {name, ne, type, data}. */
function writeGguf(nKv, metadata, tensors, alignment = 32) {
  const parts = [];
  const u32 = (v) => parts.push(Buffer.from(new Uint32Array([v]).buffer));
  const u64 = (v) => parts.push(Buffer.from(new BigUint64Array([BigInt(v)]).buffer));
  const str = (s) => (u64(Buffer.byteLength(s)), parts.push(Buffer.from(s, 'utf8')));
  parts.push(Buffer.from('GGUF', 'latin1'));
  u32(3);
  u64(tensors.length);
  u64(nKv);
  parts.push(metadata);
  let offset = 0;
  for (const t of tensors) {
    str(t.name);
    u32(t.ne.length);
    for (const d of t.ne) u64(d);
    u32(t.type);
    u64(offset);
    offset += Math.ceil(t.data.length / alignment) * alignment;
  }
  const head = Buffer.concat(parts);
  const out = Buffer.alloc(Math.ceil(head.length / alignment) * alignment + offset);
  head.copy(out);
  let at = Math.ceil(head.length / alignment) * alignment;
  for (const t of tensors) {
    t.data.copy(out, at);
    at += Math.ceil(t.data.length / alignment) * alignment;
  }
  return out;
}

/** One metadata entry's bytes. */
function kv(key, type, valueBytes) {
  const k = Buffer.from(key, 'utf8');
  const head = Buffer.alloc(12 + k.length);
  head.writeBigUInt64LE(BigInt(k.length), 0);
  k.copy(head, 8);
  head.writeUInt32LE(type, 8 + k.length);
  return Buffer.concat([head, valueBytes]);
}

function f32ToF16(x) {
  // Round to nearest (ties away from zero is close enough for seeds).
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | Math.round(mant / 0x2000);
}

/** ggml's Q8_0 blocks (f16 scale, 32 int8) of a multiple of 32 floats. */
function quantQ8(x) {
  const out = Buffer.alloc((x.length / 32) * 34);
  for (let b = 0; b < x.length / 32; b++) {
    const block = x.subarray(b * 32, b * 32 + 32);
    const d = Math.max(...block.map(Math.abs)) / 127 || 1;
    out.writeUInt16LE(f32ToF16(d), b * 34);
    block.forEach((v, j) => out.writeInt8(Math.round(v / d), b * 34 + 2 + j));
  }
  return out;
}

/** ggml's Q4_0 blocks (f16 scale, 16 bytes of nibbles: j low, j + 16 high) of a multiple of 32 floats. */
function quantQ4(x) {
  const out = Buffer.alloc((x.length / 32) * 18);
  for (let b = 0; b < x.length / 32; b++) {
    const block = x.subarray(b * 32, b * 32 + 32);
    const d = Math.max(...block.map(Math.abs)) / 8 || 1;
    out.writeUInt16LE(f32ToF16(d), b * 18);
    const q = (v) => Math.min(15, Math.max(0, Math.round(v / d) + 8));
    for (let j = 0; j < 16; j++) out[b * 18 + 2 + j] = q(block[j]) | (q(block[j + 16]) << 4);
  }
  return out;
}

function ggufSeeds(ggufPath) {
  const buf = fs.readFileSync(ggufPath);
  const g = walkGguf(buf);
  const bytesOf = (t) => {
    const n = t.ne.reduce((a, b) => a * b, 1) * 4; // the real model is all F32
    return buf.subarray(g.dataStart + t.offset, g.dataStart + t.offset + n);
  };
  const small = g.tensors.filter((t) => t.type === 0 && t.ne.length === 1).slice(0, 6);
  const embd = g.tensors.find((t) => t.name === 'token_embd.weight');
  const rows = new Float32Array(bytesOf(embd).buffer.slice(bytesOf(embd).byteOffset, bytesOf(embd).byteOffset + 4 * 64 * 4)); // 4 rows of 64
  const f16 = Buffer.from(new Uint16Array(Array.from(rows.subarray(0, 64), f32ToF16)).buffer);
  const bf16 = Buffer.from(new Uint16Array(Array.from(new Uint32Array(rows.buffer, 0, 64), (u) => u >>> 16)).buffer);
  const extra = Buffer.concat([
    kv('fuzz.u64', 10, Buffer.from(new BigUint64Array([1n << 40n]).buffer)),
    kv('fuzz.i8', 1, Buffer.from([0xff])),
    kv('fuzz.f64', 12, Buffer.from(new Float64Array([0.5]).buffer)),
    kv('fuzz.bool', 7, Buffer.from([1])),
    // An array of arrays: [[1, 2], ["x"]].
    kv('fuzz.nested', ARRAY, Buffer.concat([
      Buffer.from(new Uint32Array([ARRAY]).buffer), Buffer.from(new BigUint64Array([2n]).buffer),
      Buffer.from(new Uint32Array([2]).buffer), Buffer.from(new BigUint64Array([2n]).buffer), Buffer.from(new Uint16Array([1, 2]).buffer),
      Buffer.from(new Uint32Array([STRING]).buffer), Buffer.from(new BigUint64Array([1n, 1n]).buffer), Buffer.from('x'),
    ])),
  ]);
  const alignment16 = kv('general.alignment', 4, Buffer.from(new Uint32Array([16]).buffer));
  const f32 = (t) => ({ name: t.name, ne: t.ne, type: 0, data: bytesOf(t) });
  return {
    'real-norms.gguf': writeGguf(g.nKv, g.metadata, small.map(f32)),
    'real-metadata-only.gguf': writeGguf(g.nKv, g.metadata, []),
    'real-quantized.gguf': writeGguf(g.nKv + 5, Buffer.concat([g.metadata, extra]), [
      { name: 'q8_0', ne: [64, 4], type: 8, data: quantQ8(rows) },
      { name: 'q4_0', ne: [64, 4], type: 2, data: quantQ4(rows) },
      { name: 'f16', ne: [64], type: 1, data: f16 },
      { name: 'bf16', ne: [64], type: 30, data: bf16 },
      { name: 'i32', ne: [4], type: 26, data: Buffer.from(new Int32Array([1, -2, 3, 1 << 30]).buffer) },
      { name: 'q4_k', ne: [256], type: 12, data: Buffer.alloc(144, 7) },
      { name: 'empty', ne: [0, 64], type: 0, data: Buffer.alloc(0) },
    ]),
    'tiny-aligned16.gguf': writeGguf(2, Buffer.concat([alignment16, kv('general.architecture', STRING, Buffer.concat([Buffer.from(new BigUint64Array([5n]).buffer), Buffer.from('llama')]))]), [
      { name: 'a', ne: [3], type: 0, data: Buffer.from(new Float32Array([1, 2, 3]).buffer) },
      { name: 'b', ne: [32], type: 8, data: quantQ8(rows.subarray(0, 32)) },
    ], 16),
  };
}

// ---- safetensors: a u64 header length, a JSON header, the data section -------------------------

function writeSafetensors(header, data) {
  const text = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([len, text, data]);
}

function safetensorsSeeds(file) {
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + headerLen));
  const data = buf.subarray(8 + headerLen);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  // The real names and dtypes, each shape cut to at most 2 x 2, with the first bytes of its real data.
  const smallHeader = {};
  const chunks = [];
  let offset = 0;
  if (header.__metadata__) smallHeader.__metadata__ = header.__metadata__;
  for (const name of names) {
    const e = header[name];
    const shape = e.shape.map((d) => Math.min(d, 2));
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    chunks.push(data.subarray(e.data_offsets[0], e.data_offsets[0] + bytes));
    smallHeader[name] = { dtype: e.dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // Every dtype the format names, a scalar, an empty tensor and string metadata.
  const kinds = [['F64', 8], ['F32', 4], ['F16', 2], ['BF16', 2], ['I64', 8], ['I32', 4], ['I16', 2], ['I8', 1], ['U8', 1], ['BOOL', 1], ['F8_E4M3', 1], ['U64', 8]];
  const dtypeHeader = { __metadata__: { format: 'pt', note: 'caf\u00e9 \u{1F600}' } };
  let at = 0;
  for (const [dtype, size] of kinds) {
    dtypeHeader[`t.${dtype}`] = { dtype, shape: [2, 1], data_offsets: [at, at + 2 * size] };
    at += 2 * size;
  }
  dtypeHeader.scalar = { dtype: 'F32', shape: [], data_offsets: [at, at + 4] };
  dtypeHeader.empty = { dtype: 'F32', shape: [0, 5], data_offsets: [at + 4, at + 4] };
  const dtypeData = Buffer.alloc(at + 4).map((_, i) => (i * 37) & 0xff);
  return {
    'real-small-shapes.safetensors': writeSafetensors(smallHeader, Buffer.concat(chunks)),
    'real-norms.safetensors': writeSafetensors(
      Object.fromEntries(names.filter((n) => header[n].shape.length === 1).map((n) => [n, header[n]])
        .map(([n, e], i) => [n, { ...e, data_offsets: [i * 256, i * 256 + 256] }])),
      Buffer.concat(names.filter((n) => header[n].shape.length === 1).map((n) => data.subarray(header[n].data_offsets[0], header[n].data_offsets[0] + 256))),
    ),
    'dtypes.safetensors': writeSafetensors(dtypeHeader, dtypeData),
    'empty.safetensors': writeSafetensors({}, Buffer.alloc(0)),
  };
}

// ---- JSON: the real JSON files and headers, and hand-made edge cases ---------------------------

function jsonSeeds(hfDir, safetensorsFile) {
  const out = {};
  for (const f of ['config.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'tokenizer.json']) {
    const p = path.join(hfDir, f);
    if (fs.existsSync(p)) out[f] = fs.readFileSync(p);
  }
  const buf = fs.readFileSync(safetensorsFile);
  out['safetensors-header.json'] = buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0)));
  out['escapes.json'] = Buffer.from('{"a\\"b":"\\u00e9\\ud83d\\ude00\\n\\t\\/\\\\","c":[true,false,null,-0,0.5e-3,1E+2,12345678901234567890]}');
  out['numbers.json'] = Buffer.from('[0,-1,9007199254740993,-9223372036854775808,9223372036854775807,1e308,1e-320,2.5,[[[]]],{}]');
  out['utf8.json'] = Buffer.from('{"\u00e9\u4e2d\u{10348}":"\u00ff"}', 'utf8');
  return out;
}

/** Writes the seeds of every target into outDir/<target>/; returns the counts. */
function writeSeeds(modelsDir, outDir) {
  const hf = path.join(modelsDir, 'stories260K-hf');
  const gguf = path.join(modelsDir, 'stories260K', 'stories260K.gguf');
  const sets = {
    gguf: ggufSeeds(gguf),
    safetensors: safetensorsSeeds(path.join(hf, 'model.safetensors')),
    json: jsonSeeds(hf, path.join(hf, 'model.safetensors')),
  };
  const counts = {};
  for (const [target, files] of Object.entries(sets)) {
    const dir = path.join(outDir, target);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), bytes);
    counts[target] = Object.keys(files).length;
  }
  return counts;
}

module.exports = { writeSeeds, walkGguf };
