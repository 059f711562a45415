/**
 * Bounded mutation fuzzing of the GGUF reader: random bit flips, byte overwrites, truncations and
 * overwrites of length / count / type fields in the real model and in a synthetic file holding every
 * value and tensor type. Every open, metadata read and tensor load must either succeed or throw a
 * PeftError: never another error, never a crash. Seeded, so a failure reproduces.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { PeftError, quantizeGgml, readGguf, tensor } from '../../lib';
import { ggmlFormat } from '../../lib/quant/ggml-tensor';
import { bytesOf, GGML, parseGguf, writeGguf } from '../helpers/gguf';
import { rng } from '../helpers/random';
import { STORIES_GGUF } from '../helpers/models';

const MODEL = STORIES_GGUF;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-gguf-fuzz-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const INTERESTING_U64 = [0n, 1n, 2n, 3n, 4n, 5n, 31n, 32n, 33n, 255n, 256n, 4096n, 65535n, 1n << 31n, 1n << 32n, (1n << 32n) - 1n,
  1n << 40n, 1n << 53n, 1n << 60n, 1n << 62n, 1n << 63n, (1n << 63n) - 1n, (1n << 64n) - 1n, (1n << 64n) - 32n];
const INTERESTING_U32 = [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 26, 30, 31, 99, 0x7fffffff, 0xffffffff];

type Outcome = 'opened' | string;

/** Opens, reads everything, loads every tensor; returns 'opened' or the PeftError code of the first failure. */
function exercise(file: string, counts: Map<string, number>): Outcome {
  const bump = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
  let outcome: Outcome = 'opened';
  try {
    const g = readGguf(file);
    try {
      for (const key of Object.keys(g.metadata)) void g.metadataTypes[key];
      for (const info of g.tensorInfos) {
        try {
          const t = g.tensor(info.name);
          if (info.nbytes <= 1 << 20) t.toFloat32Array();
          t.dispose();
          bump('tensor loaded');
        } catch (e) {
          if (!(e instanceof PeftError)) throw e;
          bump(`tensor ${e.code}`);
        }
      }
    } finally {
      g.dispose();
    }
  } catch (e) {
    if (!(e instanceof PeftError)) throw new Error(`Not a PeftError for ${file}: ${e instanceof Error ? e.stack : String(e)}`);
    outcome = e.code;
  }
  bump(`open ${outcome}`);
  return outcome;
}

/** One random mutation of `base`; `fields` are offsets of u32 / u64 fields, `hot` the header's length. */
function mutate(base: Uint8Array, fields: { u32: number[]; u64: number[] }, hot: number, random: () => number): Uint8Array {
  const pick = <T>(a: T[]): T => a[Math.floor(random() * a.length)];
  const at = () => Math.floor(random() * (random() < 0.85 ? Math.min(hot, base.length) : base.length));
  const kind = random();
  if (kind < 0.15) return base.slice(0, Math.floor(random() * (random() < 0.7 ? hot : base.length))); // truncate
  const out = base.slice();
  const view = new DataView(out.buffer);
  if (kind < 0.45) {
    for (let k = 1 + Math.floor(random() * 4); k > 0; k--) {
      const i = at();
      out[i] ^= 1 << Math.floor(random() * 8); // bit flips
    }
  } else if (kind < 0.6) {
    for (let k = 1 + Math.floor(random() * 3); k > 0; k--) out[at()] = Math.floor(random() * 256); // byte overwrites
  } else if (kind < 0.85) {
    const off = pick(fields.u64); // a length, count, dimension or offset
    const v = random() < 0.7 ? pick(INTERESTING_U64) : BigInt(Math.floor(random() * 2 ** 32)) * BigInt(1 + Math.floor(random() * 2 ** 20));
    view.setBigUint64(off, v & ((1n << 64n) - 1n), true);
  } else {
    view.setUint32(pick(fields.u32), random() < 0.8 ? pick(INTERESTING_U32) : Math.floor(random() * 2 ** 32), true); // a type, version or n_dims
  }
  return out;
}

/** Runs up to `iterations` mutations for `budgetMs`, and at least `minimum` however long they take. */
function fuzz(base: Uint8Array, iterations: number, seed: number, budgetMs: number, minimum: number): Map<string, number> {
  const parsed = parseGguf(base);
  const random = rng(seed);
  const counts = new Map<string, number>();
  const start = Date.now();
  for (let i = 0; i < iterations && (i < minimum || Date.now() - start < budgetMs); i++) {
    // A new file each time, removed after use: a file is never changed under a live mapping.
    const file = path.join(tmp, `f${seed}-${i}.gguf`);
    fs.writeFileSync(file, mutate(base, parsed.fields, parsed.dataStart, random));
    exercise(file, counts);
    fs.unlinkSync(file);
  }
  return counts;
}

function synthetic(): Uint8Array {
  const random = rng(99);
  const q8 = new Uint8Array(4 * 34).map(() => Math.floor(random() * 256));
  const q4 = new Uint8Array(6 * 18).map(() => Math.floor(random() * 256));
  return writeGguf({
    version: 2,
    alignment: 16,
    metadata: [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['u8', { type: 'u8', value: 1 }],
      ['i64', { type: 'i64', value: -5n }],
      ['f64', { type: 'f64', value: 0.5 }],
      ['bool', { type: 'bool', value: true }],
      ['tokens', { type: 'array', elem: 'string', value: ['a', 'bb', 'ccc', 'dddd'] }],
      ['scores', { type: 'array', elem: 'f32', value: [0.1, 0.2, 0.3] }],
      ['nested', { type: 'array', elem: 'array', value: [{ elem: 'u16', value: [1, 2] }, { elem: 'string', value: ['x'] }] }],
    ],
    tensors: [
      { name: 'f32', shape: [3, 5], type: GGML.F32.id, data: bytesOf(new Float32Array(15).fill(1.5)) },
      { name: 'f16', shape: [2, 3], type: GGML.F16.id, data: bytesOf(new Uint16Array(6).fill(0x3c00)) },
      { name: 'bf16', shape: [4], type: GGML.BF16.id, data: bytesOf(new Uint16Array(4).fill(0x3f80)) },
      { name: 'q8', shape: [2, 64], type: GGML.Q8_0.id, data: q8 },
      { name: 'q4', shape: [3, 2, 32], type: GGML.Q4_0.id, data: q4 },
      { name: 'q4k', shape: [256], type: GGML.Q4_K.id, data: new Uint8Array(144) },
      // Quantized by the library's llama.cpp quantizers: valid blocks for the mutations to break.
      ...(['Q2_K', 'Q3_K', 'Q5_K', 'Q6_K', 'IQ4_XS', 'Q5_1', 'IQ4_NL'] as const).map((type) => ({
        name: type.toLowerCase(), shape: [2, 256], type: ggmlFormat(type).id, data: quantizeGgml(tensor(Float32Array.from({ length: 512 }, (_, i) => Math.sin(i)), [2, 256]), type).data.toTypedArray() as Uint8Array,
      })),
    ],
  }).bytes;
}

describe('mutation fuzzing', () => {
  it('answers every mutation of a synthetic file with a result or a PeftError', () => {
    const counts = fuzz(synthetic(), 5000, 1, 5000, 501);
    if (process.env.GGUF_FUZZ_VERBOSE) console.log(Object.fromEntries(counts));
    const total = [...counts].filter(([k]) => k.startsWith('open ')).reduce((a, [, n]) => a + n, 0);
    expect(total).toBeGreaterThan(500);
    expect(counts.get('open opened')).toBeGreaterThan(0);
    expect(counts.get('open E_FORMAT')).toBeGreaterThan(0);
  });

  it('answers every mutation of the real model with a result or a PeftError', () => {
    const counts = fuzz(new Uint8Array(fs.readFileSync(MODEL)), 3000, 2, 5000, 201);
    if (process.env.GGUF_FUZZ_VERBOSE) console.log(Object.fromEntries(counts));
    const total = [...counts].filter(([k]) => k.startsWith('open ')).reduce((a, [, n]) => a + n, 0);
    expect(total).toBeGreaterThan(200);
    expect(counts.get('open opened')).toBeGreaterThan(0);
    expect(counts.get('open E_FORMAT')).toBeGreaterThan(0);
  });
});
