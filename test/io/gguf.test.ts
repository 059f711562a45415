/**
 * The GGUF reader: the real stories260K model cross-checked against an independent JS parse of the
 * same bytes; synthetic files (test/helpers/gguf.ts) for every metadata type, versions 2 and 3,
 * F16 / BF16 / Q8_0 / Q4_0 tensors against values computed here, and alignment; hostile files
 * (truncated, bad magic and version, huge counts and lengths, data past the end, too many
 * dimensions, unknown types), each a PeftError with the right code.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { dequantizeGgml, ops, PeftError, quantizeGgml, readGguf, tensor, type GgufFile, type PeftErrorCode } from '../../lib';
import {
  bf16ToNumber,
  bytesOf,
  f16ToNumber,
  GGML,
  parseGguf,
  writeGguf,
  type GgufSpec,
  type MetaValue,
  type TensorSpec,
} from '../helpers/gguf';
import { rng } from '../helpers/random';
import { STORIES_GGUF } from '../helpers/models';

const MODEL = STORIES_GGUF;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-gguf-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let fileCounter = 0;
function writeTemp(bytes: Uint8Array): string {
  const file = path.join(tmp, `t${fileCounter++}.gguf`);
  fs.writeFileSync(file, bytes);
  return file;
}

function openBytes(bytes: Uint8Array): GgufFile {
  return readGguf(writeTemp(bytes));
}

function expectPeftError(fn: () => unknown, code: PeftErrorCode, message?: RegExp): PeftError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (!(err instanceof PeftError)) {
    throw new Error(`Expected a PeftError ${code} but got ${err instanceof Error ? `${err.name}: ${err.message}` : 'no error'}`);
  }
  expect(err.code).toBe(code);
  if (message) expect(err.message).toMatch(message);
  return err;
}

// Plain JS values of the independent parse, as the reader reports them (u64 / i64 as Number when safe).
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

/** Bitwise-equal floats (after rounding the expected values to f32), reporting the first difference. */
function expectSameFloats(actual: Float32Array, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  const want = Float32Array.from(expected);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(actual[i], want[i])) expect({ index: i, value: actual[i] }).toEqual({ index: i, value: want[i] });
  }
}

const GGML_NAMES: Record<number, string> = { 0: 'F32', 1: 'F16', 2: 'Q4_0', 8: 'Q8_0', 12: 'Q4_K', 16: 'IQ2_XXS', 26: 'I32', 30: 'BF16' };

describe('the real model (stories260K.gguf)', () => {
  const bytes = new Uint8Array(fs.readFileSync(MODEL));
  const reference = parseGguf(bytes);
  let file: GgufFile;
  beforeAll(() => {
    file = readGguf(MODEL);
  });
  afterAll(() => file.dispose());

  it('has version 3 and the llama architecture metadata', () => {
    expect(file.version).toBe(3);
    expect(file.alignment).toBe(32);
    const m = file.metadata;
    expect(m['general.architecture']).toBe('llama');
    expect(m['llama.embedding_length']).toBe(64);
    expect(m['llama.block_count']).toBe(5);
    expect(m['llama.attention.head_count']).toBe(8);
    expect(m['llama.attention.head_count_kv']).toBe(4);
    expect(m['llama.feed_forward_length']).toBe(172);
    expect(m['llama.attention.layer_norm_rms_epsilon']).toBe(Math.fround(1e-5));
    const tokens = m['tokenizer.ggml.tokens'] as string[];
    expect(tokens).toHaveLength(512);
    expect(tokens.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    expect(file.metadataTypes['tokenizer.ggml.tokens']).toBe('array<string>');
    expect(file.metadataTypes['tokenizer.ggml.scores']).toBe('array<f32>');
    expect(file.metadataTypes['llama.block_count']).toBe('u32');
  });

  it('reports the same metadata as an independent parse of the bytes', () => {
    expect(Object.keys(file.metadata)).toEqual([...reference.metadata.keys()]);
    for (const [key, { type, value }] of reference.metadata) {
      expect([key, file.metadata[key]]).toEqual([key, plain(value)]);
      if (type !== 'array') expect([key, file.metadataTypes[key]]).toEqual([key, type]);
    }
  });

  it('lists every tensor with its shape (outermost first), type and offset', () => {
    expect(file.tensorInfos).toHaveLength(3 + 5 * 9);
    expect(file.tensorInfos.map((t) => [t.name, t.shape, t.type, t.offset])).toEqual(
      reference.tensors.map((t) => [t.name, t.shape, GGML_NAMES[t.type], t.offset]),
    );
    const byName = new Map(file.tensorInfos.map((t) => [t.name, t]));
    expect(byName.get('token_embd.weight')!.shape).toEqual([512, 64]);
    expect(byName.get('blk.0.attn_k.weight')!.shape).toEqual([32, 64]); // 4 KV heads x head dim 8
    expect(byName.get('blk.4.ffn_gate.weight')!.shape).toEqual([172, 64]);
    expect(byName.get('blk.4.ffn_down.weight')!.shape).toEqual([64, 172]);
    expect(byName.get('output_norm.weight')!.shape).toEqual([64]);
    for (const t of file.tensorInfos) {
      expect(t.type).toBe('F32');
      expect(t.nbytes).toBe(4 * t.shape.reduce((a, b) => a * b, 1));
    }
  });

  it('gives token_embd.weight with the values the independent parse reads', () => {
    const info = reference.tensors.find((t) => t.name === 'token_embd.weight')!;
    const start = reference.dataStart + info.offset;
    const expected = new Float32Array(bytes.slice(start, start + 512 * 64 * 4).buffer);
    const t = file.tensor('token_embd.weight');
    expect(t.shape).toEqual([512, 64]);
    expect(t.dtype).toBe('f32');
    expect(t.toFloat32Array()).toEqual(expected);
  });

  it('loads every F32 tensor as a zero-copy view of the mapped file', async () => {
    for (const info of file.tensorInfos) {
      const t = file.tensor(info.name);
      expect([info.name, t.shape, file.isView(t)]).toEqual([info.name, info.shape, true]);
      t.dispose();
    }
    const a = await file.tensorAsync('output.weight');
    expect(file.isView(a)).toBe(true);
    expect(a.toFloat32Array()).toEqual(file.tensor('output.weight').toFloat32Array());
    // A tensor made in memory is not a view of the file.
    expect(file.isView(tensor([1, 2]))).toBe(false);
  });

  it('shares the bytes: a write through one view shows in the next load, never in the file on disk', () => {
    const own = readGguf(MODEL);
    try {
      const norm = own.tensor('output_norm.weight'); // [64]
      const before = norm.toFloat32Array();
      const view2d = own.tensor('blk.0.attn_q.weight'); // [64, 64]: overwritten with ones · ones
      ops.matmul(tensor(new Float32Array(64 * 2).fill(1), [64, 2]), tensor(new Float32Array(2 * 64).fill(1), [2, 64]), { out: view2d });
      expect(own.tensor('blk.0.attn_q.weight').toFloat32Array()).toEqual(new Float32Array(64 * 64).fill(2));
      expect(own.tensor('output_norm.weight').toFloat32Array()).toEqual(before);
      // Copy-on-write: the file and a fresh mapping still hold the original weights.
      const disk = parseGguf(new Uint8Array(fs.readFileSync(MODEL)));
      expect(disk.tensors.length).toBe(48);
      const again = readGguf(MODEL);
      expect(again.tensor('blk.0.attn_q.weight').toFloat32Array()).toEqual(file.tensor('blk.0.attn_q.weight').toFloat32Array());
      expect(again.tensor('blk.0.attn_q.weight').toFloat32Array()).not.toEqual(new Float32Array(64 * 64).fill(2));
      again.dispose();
    } finally {
      own.dispose();
    }
  });

  it('keeps loaded views valid after dispose(), and refuses use of the disposed file', () => {
    const own = readGguf(MODEL);
    const t = own.tensor('token_embd.weight');
    own.dispose();
    own.dispose();
    expect(t.toFloat32Array().length).toBe(512 * 64);
    expectPeftError(() => own.tensor('token_embd.weight'), 'E_DISPOSED', /disposed/);
  });

  it('names a few tensors there are for an unknown name', () => {
    expectPeftError(() => file.tensor('token_embd'), 'E_ARGUMENT', /Expected the name of a tensor in .*"token_embd.weight".* but received "token_embd"/);
    expectPeftError(() => file.tensor(5 as unknown as string), 'E_ARGUMENT', /Expected a tensor name/);
  });
});

// ---------------------------------------------------------------------------------------------
// Synthetic files.

const ALL_TYPES: [string, MetaValue][] = [
  ['t.u8', { type: 'u8', value: 255 }],
  ['t.i8', { type: 'i8', value: -128 }],
  ['t.u16', { type: 'u16', value: 65535 }],
  ['t.i16', { type: 'i16', value: -32768 }],
  ['t.u32', { type: 'u32', value: 4294967295 }],
  ['t.i32', { type: 'i32', value: -2147483648 }],
  ['t.f32', { type: 'f32', value: Math.fround(3.14159) }],
  ['t.bool.true', { type: 'bool', value: true }],
  ['t.bool.false', { type: 'bool', value: false }],
  ['t.string', { type: 'string', value: 'héllo wörld ✓' }],
  ['t.string.empty', { type: 'string', value: '' }],
  ['t.u64.small', { type: 'u64', value: 9007199254740991n }],
  ['t.u64.big', { type: 'u64', value: 18446744073709551615n }],
  ['t.i64.small', { type: 'i64', value: -9007199254740991n }],
  ['t.i64.big', { type: 'i64', value: -9223372036854775808n }],
  ['t.f64', { type: 'f64', value: -1.5e300 }],
  ['t.arr.u8', { type: 'array', elem: 'u8', value: [0, 1, 255] }],
  ['t.arr.i8', { type: 'array', elem: 'i8', value: [-1, 127] }],
  ['t.arr.u16', { type: 'array', elem: 'u16', value: [1, 65535] }],
  ['t.arr.i16', { type: 'array', elem: 'i16', value: [-2, 3] }],
  ['t.arr.u32', { type: 'array', elem: 'u32', value: [7, 4000000000] }],
  ['t.arr.i32', { type: 'array', elem: 'i32', value: [-7, 2000000000] }],
  ['t.arr.f32', { type: 'array', elem: 'f32', value: [0.5, -0.25, Math.fround(0.1)] }],
  ['t.arr.bool', { type: 'array', elem: 'bool', value: [true, false, true] }],
  ['t.arr.string', { type: 'array', elem: 'string', value: ['a', '', 'ccc'] }],
  ['t.arr.u64', { type: 'array', elem: 'u64', value: [1n, 18446744073709551615n] }],
  ['t.arr.i64', { type: 'array', elem: 'i64', value: [-1n, -9223372036854775808n] }],
  ['t.arr.f64', { type: 'array', elem: 'f64', value: [1e-300, 2.5] }],
  ['t.arr.empty', { type: 'array', elem: 'u32', value: [] }],
  [
    't.arr.nested',
    {
      type: 'array',
      elem: 'array',
      value: [
        { elem: 'u8', value: [1, 2] },
        { elem: 'string', value: ['x'] },
        { elem: 'array', value: [{ elem: 'i16', value: [-3] }] },
      ],
    },
  ],
];

function expectedJs(v: MetaValue): unknown {
  const conv = (x: unknown): unknown => {
    if (typeof x === 'bigint') return plain(x);
    if (x && typeof x === 'object' && 'elem' in x) return (x as unknown as { value: unknown[] }).value.map(conv);
    return x;
  };
  return v.type === 'array' ? v.value.map(conv) : conv(v.value);
}

function f32Tensor(name: string, shape: number[], values: number[]): TensorSpec {
  return { name, shape, type: GGML.F32.id, data: bytesOf(new Float32Array(values)) };
}

describe('synthetic files', () => {
  it.each([2, 3])('round-trips every metadata value type (version %i)', (version) => {
    const file = openBytes(writeGguf({ version, metadata: ALL_TYPES }).bytes);
    expect(file.version).toBe(version);
    expect(Object.keys(file.metadata)).toEqual(ALL_TYPES.map(([k]) => k));
    for (const [key, v] of ALL_TYPES) {
      expect([key, file.metadata[key]]).toEqual([key, expectedJs(v)]);
    }
    expect(typeof file.metadata['t.u64.big']).toBe('bigint');
    expect(typeof file.metadata['t.u64.small']).toBe('number');
    expect(file.metadataTypes['t.arr.u64']).toBe('array<u64>');
    expect(file.metadataTypes['t.arr.nested']).toBe('array<array<u8>>');
    expect(file.metadataTypes['t.f64']).toBe('f64');
    expect(file.tensorInfos).toEqual([]);
    file.dispose();
  });

  it('keeps a metadata key named __proto__ as a plain key', () => {
    const file = openBytes(writeGguf({ metadata: [['__proto__', { type: 'u32', value: 7 }]] }).bytes);
    expect(Object.keys(file.metadata)).toEqual(['__proto__']);
    expect(file.metadata['__proto__']).toBe(7);
  });

  it('reads F32, F16, BF16 and I32 tensors as views with their dtypes, shapes reversed from ne', () => {
    const random = rng(1);
    const f16 = new Uint16Array(3 * 5 * 7).map(() => Math.floor(random() * 0x7c00) | (random() < 0.5 ? 0x8000 : 0));
    const bf16 = new Uint16Array(11 * 2).map(() => Math.floor(random() * 0x7f80) | (random() < 0.5 ? 0x8000 : 0));
    const f32 = Array.from({ length: 13 }, () => random() - 0.5);
    const i32 = new Int32Array([-5, 0, 2147483647, -2147483648, 9, 10]);
    const file = openBytes(
      writeGguf({
        tensors: [
          { name: 'h', shape: [3, 5, 7], type: GGML.F16.id, data: bytesOf(f16) },
          { name: 'b', shape: [11, 2], type: GGML.BF16.id, data: bytesOf(bf16) },
          f32Tensor('f', [13], f32),
          { name: 'i', shape: [1, 2, 1, 3], type: GGML.I32.id, data: bytesOf(i32) },
        ],
      }).bytes,
    );
    const h = file.tensor('h');
    expect([h.shape, h.dtype, file.isView(h)]).toEqual([[3, 5, 7], 'f16', true]);
    expect(h.toTypedArray()).toEqual(f16);
    expectSameFloats(h.toFloat32Array(), Array.from(f16, f16ToNumber));
    const b = file.tensor('b');
    expect([b.shape, b.dtype, file.isView(b)]).toEqual([[11, 2], 'bf16', true]);
    expectSameFloats(b.toFloat32Array(), Array.from(bf16, bf16ToNumber));
    const f = file.tensor('f');
    expect([f.shape, f.dtype]).toEqual([[13], 'f32']);
    expect(Array.from(f.toFloat32Array())).toEqual(f32.map(Math.fround));
    const i = file.tensor('i');
    expect([i.shape, i.dtype]).toEqual([[1, 2, 1, 3], 'i32']);
    expect(i.toTypedArray()).toEqual(i32);
    expect(file.tensorInfos.map((t) => [t.name, t.type, t.nbytes])).toEqual([
      ['h', 'F16', 210],
      ['b', 'BF16', 44],
      ['f', 'F32', 52],
      ['i', 'I32', 24],
    ]);
  });

  // Q8_0 block: f16 d, 32 x int8 q; value = d * q.
  function q8Blocks(random: () => number, nBlocks: number): { data: Uint8Array; expected: number[] } {
    const data = new Uint8Array(nBlocks * 34);
    const view = new DataView(data.buffer);
    const expected: number[] = [];
    for (let b = 0; b < nBlocks; b++) {
      const d = 0x2000 + Math.floor(random() * 0x2000) + (random() < 0.3 ? 0x8000 : 0); // assorted normal f16 scales
      view.setUint16(b * 34, d, true);
      for (let j = 0; j < 32; j++) {
        const q = Math.floor(random() * 256) - 128;
        view.setInt8(b * 34 + 2 + j, q);
        expected.push(Math.fround(f16ToNumber(d) * q));
      }
    }
    return { data, expected };
  }

  // Q4_0 block: f16 d, 16 bytes; element j = (qs[j] & 0xF) - 8, element j + 16 = (qs[j] >> 4) - 8; times d.
  function q4Blocks(random: () => number, nBlocks: number): { data: Uint8Array; expected: number[] } {
    const data = new Uint8Array(nBlocks * 18);
    const view = new DataView(data.buffer);
    const expected: number[] = [];
    for (let b = 0; b < nBlocks; b++) {
      const d = 0x1c00 + Math.floor(random() * 0x2000) + (random() < 0.3 ? 0x8000 : 0);
      view.setUint16(b * 18, d, true);
      const block = new Array<number>(32);
      for (let j = 0; j < 16; j++) {
        const byte = Math.floor(random() * 256);
        data[b * 18 + 2 + j] = byte;
        block[j] = Math.fround(f16ToNumber(d) * ((byte & 15) - 8));
        block[j + 16] = Math.fround(f16ToNumber(d) * ((byte >> 4) - 8));
      }
      expected.push(...block);
    }
    return { data, expected };
  }

  it.each([
    [[32]],
    [[1, 32]],
    [[3, 64]],
    [[7, 5, 96]],
    [[2, 1, 3, 160]],
    [[1000, 32]],
  ])('dequantizes Q8_0 and Q4_0 tensors of shape %j to f32', (shape) => {
    const random = rng(shape.reduce((a, b) => a * 31 + b, 7));
    const n = shape.reduce((a, b) => a * b, 1);
    const q8 = q8Blocks(random, n / 32);
    const q4 = q4Blocks(random, n / 32);
    for (const version of [2, 3]) {
      const file = openBytes(
        writeGguf({
          version,
          tensors: [
            { name: 'q8', shape, type: GGML.Q8_0.id, data: q8.data },
            { name: 'q4', shape, type: GGML.Q4_0.id, data: q4.data },
          ],
        }).bytes,
      );
      expect(file.tensorInfos.map((t) => [t.type, t.nbytes])).toEqual([
        ['Q8_0', (n / 32) * 34],
        ['Q4_0', (n / 32) * 18],
      ]);
      const a = file.tensor('q8');
      expect([a.shape, a.dtype, file.isView(a)]).toEqual([shape, 'f32', false]);
      expectSameFloats(a.toFloat32Array(), q8.expected);
      const b = file.tensor('q4');
      expect([b.shape, b.dtype]).toEqual([shape, 'f32']);
      expectSameFloats(b.toFloat32Array(), q4.expected);
      file.dispose();
    }
  });

  it('dequantizes off the event loop with tensorAsync', async () => {
    const q8 = q8Blocks(rng(5), 4096);
    const file = openBytes(writeGguf({ tensors: [{ name: 'w', shape: [1024, 128], type: GGML.Q8_0.id, data: q8.data }] }).bytes);
    const t = await file.tensorAsync('w');
    expectSameFloats(t.toFloat32Array(), q8.expected);
    await expect(file.tensorAsync('nope')).rejects.toMatchObject({ code: 'E_ARGUMENT' });
  });

  it.each([1, 2, 8, 32, 64, 4096])('places data by general.alignment %i', (alignment) => {
    const values = [
      [1, 2, 3],
      [4, 5, 6, 7, 8],
      [9],
    ];
    const { bytes, layout } = writeGguf({
      alignment,
      tensors: values.map((v, k) => f32Tensor(`t${k}`, [v.length], v)),
    });
    expect(layout.dataStart % alignment).toBe(0);
    const file = openBytes(bytes);
    expect(file.alignment).toBe(alignment);
    values.forEach((v, k) => {
      const t = file.tensor(`t${k}`);
      expect(Array.from(t.toFloat32Array())).toEqual(v);
      // Views where the bytes are element-aligned; copies where alignment 1 or 2 leaves them unaligned.
      const info = file.tensorInfos[k];
      expect(file.isView(t)).toBe((layout.dataStart + info.offset) % 4 === 0);
    });
  });

  it('lists an IQ2_XXS tensor but refuses to load it, naming the type', () => {
    const file = openBytes(writeGguf({ tensors: [{ name: 'k', shape: [2, 256], type: GGML.IQ2_XXS.id, data: new Uint8Array(132) }] }).bytes);
    expect(file.tensorInfos[0]).toMatchObject({ name: 'k', shape: [2, 256], type: 'IQ2_XXS', nbytes: 132 });
    expectPeftError(() => file.tensor('k'), 'E_UNSUPPORTED', /Expected a tensor type this reader can load .* for tensor "k" but received IQ2_XXS/);
    expectPeftError(() => file.blocks('k'), 'E_UNSUPPORTED', /tensor "k" is IQ2_XXS, not one of the ggml block types/);
  });

  it('gives a K-quant tensor as its stored blocks or dequantized, and refuses a NaN block scale', () => {
    // Two Q4_K rows from llama.cpp's quantizer (the block bytes are checked against ggml's in test/quant/ggml-blocks.test.ts).
    const values = Float32Array.from({ length: 512 }, (_, i) => Math.sin(i * 0.7) * (1 + (i % 13)));
    const q = quantizeGgml(tensor(values, [2, 256]), 'Q4_K');
    const bytes = q.data.toTypedArray() as Uint8Array;
    const file = openBytes(writeGguf({ tensors: [{ name: 'k', shape: [2, 256], type: GGML.Q4_K.id, data: bytes }] }).bytes);
    const blocks = file.blocks('k');
    expect(blocks.dtype).toBe('u8');
    expect(Array.from(blocks.toTypedArray() as Uint8Array)).toEqual(Array.from(bytes));
    expect(file.isView(blocks)).toBe(true);
    expect(Array.from(file.tensor('k').toFloat32Array())).toEqual(Array.from(dequantizeGgml(q).toFloat32Array()));
    const bad = bytes.slice();
    bad[144 + 1] = 0x7e; // block 1's d: f16 0x7e00, a NaN
    const badFile = openBytes(writeGguf({ tensors: [{ name: 'k', shape: [2, 256], type: GGML.Q4_K.id, data: bad }] }).bytes);
    expectPeftError(() => badFile.blocks('k'), 'E_NONFINITE', /tensor "k" has a NaN or infinite Q4_K block scale \(block 1 of 2\)/);
    expect(badFile.blocks('k', false).size).toBe(288);
  });

  it('reads a zero-dimensional tensor and one with a zero dimension', () => {
    const file = openBytes(
      writeGguf({ tensors: [f32Tensor('scalar', [], [2.5]), { name: 'empty', shape: [0, 4], type: GGML.F32.id, data: new Uint8Array(0) }] }).bytes,
    );
    expect(file.tensor('scalar').shape).toEqual([]);
    expect(Array.from(file.tensor('scalar').toFloat32Array())).toEqual([2.5]);
    expect(file.tensor('empty').shape).toEqual([0, 4]);
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile files.

function simpleFile(extra: Partial<GgufSpec> = {}) {
  return writeGguf({
    metadata: [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['v', { type: 'array', elem: 'u32', value: [1, 2, 3] }],
      ['s', { type: 'array', elem: 'string', value: ['ab', 'c'] }],
    ],
    tensors: [
      f32Tensor('a', [2, 3], [1, 2, 3, 4, 5, 6]),
      { name: 'q', shape: [1, 32], type: GGML.Q8_0.id, data: new Uint8Array(34) },
    ],
    ...extra,
  });
}

function patched(bytes: Uint8Array, at: number, write: (v: DataView) => void): Uint8Array {
  const copy = bytes.slice();
  write(new DataView(copy.buffer, at));
  return copy;
}

describe('bad input', () => {
  it('is E_IO for a missing file or a directory, E_ARGUMENT for a non-string path', () => {
    expectPeftError(() => readGguf(path.join(tmp, 'missing.gguf')), 'E_IO', /missing\.gguf/);
    expectPeftError(() => readGguf(tmp), 'E_IO', /directory/);
    expectPeftError(() => readGguf(42 as unknown as string), 'E_ARGUMENT', /Expected a file path/);
  });

  it('is E_FORMAT for a file truncated at any point before the end of its last tensor', () => {
    const { bytes, layout } = simpleFile();
    const end = layout.dataStart + 32 + 34; // q (Q8_0, one block) is the last tensor, at data offset 32
    for (let n = 0; n < end; n++) {
      const err = expectPeftError(() => openBytes(bytes.subarray(0, n)), 'E_FORMAT');
      expect(err.message).toContain(tmp);
    }
    // The padding after the last tensor is optional.
    for (let n = end; n <= bytes.length; n++) expect(openBytes(bytes.subarray(0, n)).tensorInfos).toHaveLength(2);
  });

  it('is E_FORMAT for the real file truncated in its header or its data', () => {
    const real = new Uint8Array(fs.readFileSync(MODEL));
    const cuts = [0, 3, 4, 8, 20, 24, 100, 1000, 5000, 10000, 14000, 14175, 14176, 14177, 200000, real.length - 1];
    for (const n of cuts) expectPeftError(() => openBytes(real.subarray(0, n)), 'E_FORMAT');
  });

  it('is E_FORMAT for a bad magic, naming it', () => {
    const { bytes } = simpleFile();
    expectPeftError(() => openBytes(patched(bytes, 0, (v) => v.setUint8(0, 0x67))), 'E_FORMAT', /Expected the magic "GGUF"/);
    expectPeftError(() => openBytes(Buffer.from('PK\x03\x04 not a gguf file at all')), 'E_FORMAT', /magic/);
  });

  it.each([0, 1, 4, 0x03000000])('is E_FORMAT for version %i, naming the version', (version) => {
    const { bytes } = simpleFile();
    expectPeftError(
      () => openBytes(patched(bytes, 4, (v) => v.setUint32(0, version, true))),
      'E_FORMAT',
      new RegExp(`Expected GGUF version 2 or 3 for version but received ${version}`),
    );
  });

  it('is E_FORMAT for counts and lengths that cannot fit in the file', () => {
    const { bytes, layout } = simpleFile();
    const huge = 2n ** 60n;
    const cases: [string, number, RegExp][] = [
      ['tensor count', layout.tensorCount, /tensor count .* but received 1152921504606846976/],
      ['metadata count', layout.kvCount, /metadata count .* but received 1152921504606846976/],
      ['key length', layout.kv[0].key, /string length .* metadata key #0 but received 1152921504606846976/],
      ['string value length', layout.kv[0].value, /string length .* metadata "general.architecture" but received/],
      ['array length', layout.kv[1].value + 4, /array length .* metadata "v" \(array of u32\) but received 1152921504606846976/],
      ['string array length', layout.kv[2].value + 4, /array length .* metadata "s" \(array of string\)/],
      ['string in an array', layout.kv[2].value + 12, /string length .* metadata "s"\[0\] but received/],
      ['tensor name length', layout.tensors[0].name, /tensor name #0 but received/],
    ];
    for (const [what, at, message] of cases) {
      for (const value of [huge, 2n ** 40n, 2n ** 64n - 1n]) {
        const err = expectPeftError(() => openBytes(patched(bytes, at, (v) => v.setBigUint64(0, value, true))), 'E_FORMAT');
        if (value === huge) expect([what, err.message]).toEqual([what, expect.stringMatching(message)]);
      }
    }
  });

  it('is E_FORMAT for tensor data past the end of the file', () => {
    const { bytes, layout } = simpleFile();
    for (const offset of [64n, 1n << 20n, 1n << 62n, 2n ** 64n - 32n]) {
      expectPeftError(
        () => openBytes(patched(bytes, layout.tensors[1].offset, (v) => v.setBigUint64(0, offset, true))),
        'E_FORMAT',
        /tensor "q" .* runs past the end of the file/,
      );
    }
    // A dimension grown so the data no longer fits.
    expectPeftError(() => openBytes(patched(bytes, layout.tensors[0].dims, (v) => v.setBigUint64(0, 1000n, true))), 'E_FORMAT', /past the end/);
  });

  it('is E_FORMAT for misaligned and overlapping tensors', () => {
    const { bytes, layout } = simpleFile();
    expectPeftError(() => openBytes(patched(bytes, layout.tensors[1].offset, (v) => v.setBigUint64(0, 33n, true))), 'E_FORMAT', /multiple of the alignment 32 for tensor "q" but received 33/);
    expectPeftError(() => openBytes(patched(bytes, layout.tensors[1].offset, (v) => v.setBigUint64(0, 0n, true))), 'E_FORMAT', /overlaps/);
  });

  it('is E_FORMAT for more than 4 dimensions, overflowing dimensions and bad block multiples', () => {
    const { bytes, layout } = simpleFile();
    expectPeftError(() => openBytes(patched(bytes, layout.tensors[0].nDims, (v) => v.setUint32(0, 5, true))), 'E_FORMAT', /Expected at most 4 dimensions for tensor "a" but received 5/);
    const dims4 = writeGguf({ tensors: [{ name: 'z', shape: [0, 1, 1, 1], type: GGML.F32.id, data: new Uint8Array(0) }] });
    const at = dims4.layout.tensors[0].dims;
    const over = patched(dims4.bytes, at, (v) => {
      for (let d = 0; d < 3; d++) v.setBigUint64(8 * d, 1n << 30n, true); // 2^90 elements next to a 0
    });
    expectPeftError(() => openBytes(over), 'E_FORMAT', /product fits in 63 bits/);
    expectPeftError(() => openBytes(patched(dims4.bytes, at, (v) => v.setBigUint64(0, 1n << 60n, true))), 'E_FORMAT', /below 2\^53/);
    const q = writeGguf({ tensors: [{ name: 'q', shape: [1, 32], type: GGML.Q8_0.id, data: new Uint8Array(34) }] });
    expectPeftError(() => openBytes(patched(q.bytes, q.layout.tensors[0].dims, (v) => v.setBigUint64(0, 33n, true))), 'E_FORMAT', /multiple of 32 \(the Q8_0 block size\) for tensor "q" but received 33/);
  });

  it('is E_UNSUPPORTED for a ggml type id this reader does not know, naming it', () => {
    const { bytes, layout } = simpleFile();
    for (const type of [4, 31, 99, 0xffffffff]) {
      expectPeftError(() => openBytes(patched(bytes, layout.tensors[0].type, (v) => v.setUint32(0, type, true))), 'E_UNSUPPORTED', new RegExp(`received type ${type}`));
    }
  });

  it('is E_FORMAT for bad value types, duplicate keys or names, a bad alignment and deep nesting', () => {
    const { bytes, layout } = simpleFile();
    expectPeftError(() => openBytes(patched(bytes, layout.kv[0].type, (v) => v.setUint32(0, 13, true))), 'E_FORMAT', /value type in 0..12 .* but received 13/);
    expectPeftError(() => openBytes(patched(bytes, layout.kv[1].value, (v) => v.setUint32(0, 77, true))), 'E_FORMAT', /array element type/);
    const dup = writeGguf({ metadata: [['k', { type: 'u8', value: 1 }], ['k', { type: 'u8', value: 2 }]] }).bytes;
    expectPeftError(() => openBytes(dup), 'E_FORMAT', /metadata "k" appears twice/);
    const dupT = writeGguf({ tensors: [f32Tensor('x', [1], [1]), f32Tensor('x', [1], [2])] }).bytes;
    expectPeftError(() => openBytes(dupT), 'E_FORMAT', /tensor "x" appears twice/);
    for (const alignment of [0, 3, 48, 2 ** 31]) {
      const bad = writeGguf({ metadata: [['general.alignment', { type: 'u32', value: alignment }]] }).bytes;
      expectPeftError(() => openBytes(bad), 'E_FORMAT', new RegExp(`power of two .* general.alignment but received ${alignment}`));
    }
    const badName = patched(simpleFile().bytes, simpleFile().layout.tensors[0].name + 8, (v) => v.setUint8(0, 0xff));
    expectPeftError(() => openBytes(badName), 'E_FORMAT', /UTF-8 text for tensor name #0/);
    const badKey = patched(bytes, layout.kv[0].key + 8, (v) => v.setUint8(0, 0xc0));
    expectPeftError(() => openBytes(badKey), 'E_FORMAT', /UTF-8 text for metadata key #0/);
    const notInt = writeGguf({ metadata: [['general.alignment', { type: 'string', value: '32' }]] }).bytes;
    expectPeftError(() => openBytes(notInt), 'E_FORMAT', /general.alignment but received a string/);
    let deep: unknown = { elem: 'u8', value: [1] };
    for (let d = 0; d < 20; d++) deep = { elem: 'array', value: [deep] };
    const nested = writeGguf({ metadata: [['deep', { type: 'array', ...(deep as { elem: 'array'; value: unknown[] }) }]] }).bytes;
    expectPeftError(() => openBytes(nested), 'E_FORMAT', /nested at most 8 deep/);
  });
});
