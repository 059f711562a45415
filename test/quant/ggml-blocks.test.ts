/**
 * ggml's block formats (Q4_0 … Q8_0, Q2_K … Q6_K, IQ4_NL, IQ4_XS): dequantizeGgml against an
 * independent JS reference (test/helpers/ggml-reference.ts) bit for bit on every instruction set;
 * quantize → dequantize error bounds; bit exactness against llama.cpp's own quantizers
 * (ggml_quantize_chunk, what llama-quantize runs, and quantize_row_*_ref) and dequantize_row_*
 * (test/helpers/ggml-oracle.c on node-llama-cpp's libggml-base.so, when installed beside the
 * checkout); ggmlMatmul in both directions and both compute dtypes; bad input.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  dequantizeGgml,
  dequantizeGgmlAsync,
  GGML_QUANT_TYPES,
  GgmlTensor,
  ggmlMatmul,
  ggmlMatmulAsync,
  PeftError,
  quantizeGgml,
  quantizeGgmlAsync,
  runtime,
  tensor,
  type GgmlQuantType,
} from '../../lib';
import { dequantizeRef, f16ToF32, f32ToF16, gaussian, GGML_LAYOUTS, GGML_REF_TYPES, randomBlocks, toBf16 } from '../helpers/ggml-reference';
import { reportUnsupported, SUPPORTED_ISAS, withIsa } from '../helpers/isa';
import { rng } from '../helpers/random';

const TYPES = GGML_QUANT_TYPES as readonly GgmlQuantType[];
/** An f32 array of fn(i), i < n (a plain loop: Float32Array.from with a mapper is slow in V8). */
function fill(n: number, fn: (i: number) => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = fn(i);
  return out;
}
const seedOf = (s: string): number => [...s].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 17);

function blocksTensor(type: GgmlQuantType, bytes: Uint8Array, shape: [number, number]): GgmlTensor {
  return new GgmlTensor(tensor(bytes, [bytes.length]), type, shape);
}

function hex(v: number): string {
  return '0x' + (new Uint32Array(new Float32Array([v]).buffer)[0] >>> 0).toString(16).padStart(8, '0');
}

/** Same f32 bit patterns (so -0 ≠ 0), else an error naming the first differing element. */
function expectSameBits(actual: Float32Array, expected: Float32Array, label: string): void {
  expect(actual.length).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < e.length; i++) {
    if (a[i] !== e[i]) throw new Error(`${label}: element ${i} is ${actual[i]} (${hex(actual[i])}), expected ${expected[i]} (${hex(expected[i])})`);
  }
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  expect(actual.length).toBe(expected.length);
  const at = actual.findIndex((v, i) => v !== expected[i]);
  if (at >= 0) throw new Error(`${label}: byte ${at} is 0x${actual[at].toString(16)}, expected 0x${expected[at].toString(16)}`);
}

function expectPeftError(fn: () => unknown, code: string, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(PeftError);
  expect((caught as PeftError).code).toBe(code);
  if (message) expect((caught as PeftError).message).toMatch(message);
}

describe('block layouts', () => {
  it.each(TYPES)('%s: bytes per block and bits per parameter match ggml-common.h', (type) => {
    const { block, bytes } = GGML_LAYOUTS[type];
    const q = quantizeGgml(tensor(new Float32Array(3 * 2 * block).fill(0.5), [3, 2 * block]), type);
    expect(q.nbytes).toBe(3 * 2 * bytes);
    expect(q.bitsPerParameter).toBe((bytes * 8) / block);
    expect(q.shape).toEqual([3, 2 * block]);
  });

  it('the reference f16 helpers: every finite half round-trips, midpoints round to even', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue; // Inf / NaN
      const v = f16ToF32(h);
      if (f32ToF16(v) !== h) throw new Error(`half 0x${h.toString(16)} = ${v} comes back as 0x${f32ToF16(v).toString(16)}`);
      if ((h & 0x7fff) === 0x7bff) continue; // the next one up is infinity
      const mid = (v + f16ToF32(h + 1)) / 2; // exact in f32 (12 significant bits)
      const even = h % 2 === 0 ? h : h + 1;
      if (f32ToF16(mid) !== even) throw new Error(`midpoint ${mid} above 0x${h.toString(16)} rounds to 0x${f32ToF16(mid).toString(16)}`);
    }
    expect(f32ToF16(65520)).toBe(0x7c00); // half-way past the largest half: rounds to infinity
    expect(f32ToF16(65519)).toBe(0x7bff);
  });

  it('every type of the reference is a library type and the other way round', () => {
    expect([...GGML_REF_TYPES].sort()).toEqual([...TYPES].sort());
  });
});

// ---- a. dequantization of random blocks against the JS reference, per instruction set ----

describe('dequantizeGgml of random blocks equals the JS reference bit for bit', () => {
  // Block counts 1..16 (vector loops may take several blocks at a time and finish with a tail), and a
  // matrix big enough to be split across threads.
  const shapes = (block: number): [number, number][] => [
    [1, block],
    [5, 2 * block],
    [3, 7 * block],
    ...Array.from({ length: 16 }, (_, k): [number, number] => [1 + (k % 3), (k + 1) * block]),
    [48, 4096],
  ];

  it.each(TYPES)('%s on every supported instruction set, and the same bits on each', (type) => {
    const { block, bytes } = GGML_LAYOUTS[type];
    for (const shape of shapes(block)) {
      const random = rng(seedOf(`${type}:${shape.join('x')}`));
      const data = randomBlocks(random, type, (shape[0] * shape[1]) / block);
      expect(data.length).toBe((shape[0] * shape[1] * bytes) / block);
      const expected = dequantizeRef(type, data);
      const q = blocksTensor(type, data, shape);
      let first: Float32Array | undefined;
      for (const isa of SUPPORTED_ISAS) {
        const got = withIsa(isa, () => dequantizeGgml(q));
        expect(got.shape).toEqual(shape);
        const values = got.toFloat32Array();
        expectSameBits(values, expected, `${type} [${shape}] on ${isa}`);
        if (first) expectSameBits(values, first, `${type} [${shape}] on ${isa} vs ${SUPPORTED_ISAS[0]}`);
        first ??= values;
      }
    }
  });
  reportUnsupported('ggml dequantization');

  it('the async variant gives the same bits', async () => {
    for (const type of TYPES) {
      const { block } = GGML_LAYOUTS[type];
      const data = randomBlocks(rng(seedOf(`async:${type}`)), type, 12);
      const q = blocksTensor(type, data, [3, 4 * block]);
      expectSameBits((await dequantizeGgmlAsync(q)).toFloat32Array(), dequantizeRef(type, data), `${type} async`);
    }
  });

  it('the random blocks hold subnormal and zero f16 scales (so those paths are covered)', () => {
    const data = randomBlocks(rng(1), 'Q8_0', 2000);
    const d = Array.from({ length: 2000 }, (_, i) => data[34 * i] | (data[34 * i + 1] << 8));
    expect(d.some((h) => (h & 0x7fff) === 0)).toBe(true);
    expect(d.some((h) => (h & 0x7c00) === 0 && (h & 0x3ff) !== 0)).toBe(true);
    expect(d.every((h) => Number.isFinite(f16ToF32(h)))).toBe(true);
  });
});

// ---- b. quantize → dequantize error ----

const ROUND_TRIP_COLS = 1024;

interface RowCase {
  name: string;
  outliers?: boolean;
  make: (random: () => number, n: number) => Float32Array;
}

const normalRow = (scale: number) => (random: () => number, n: number) => fill(n, () => scale * gaussian(random));
const ROW_CASES: RowCase[] = [
  { name: 'normal, std 1e-3', make: normalRow(1e-3) },
  { name: 'normal, std 1', make: normalRow(1) },
  { name: 'normal, std 100', make: normalRow(100) },
  {
    name: 'normal with 1% outliers ×20',
    outliers: true,
    make: (random, n) => fill(n, () => gaussian(random) * (random() < 0.01 ? 20 : 1)),
  },
  { name: 'uniform in [-1, 1)', make: (random, n) => fill(n, () => random() * 2 - 1) },
];

/** Half an f16 ulp at |v|: the most that storing v as f16 (round to nearest) moves it. */
function f16HalfUlp(v: number): number {
  const a = Math.abs(v);
  return a < 2 ** -14 ? 2 ** -25 : 2 ** (Math.floor(Math.log2(a)) - 11);
}

/**
 * The largest |x - dequant(quant(x))| the legacy formats allow in a 32-element block, from their
 * definitions (quantize_row_*_ref): the level step d, the rounding (half a step, or a whole step at
 * the clamped end of the symmetric types, whose d = max / -8 maps -max to level 16 → 15), the f16
 * storage of d (and m) moving every level by up to |q|·Δd, and an f32 slop.
 */
function legacyBound(type: GgmlQuantType, x: Float32Array): number | undefined {
  let amax = 0, min = Infinity, max = -Infinity;
  for (const v of x) {
    amax = Math.max(amax, Math.abs(v));
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const slop = amax * 2 ** -20;
  switch (type) {
    case 'Q8_0': { const d = amax / 127; return 0.5 * d + 127 * f16HalfUlp(d) + slop; }
    case 'Q4_0': { const d = amax / 8; return d + 8 * f16HalfUlp(d) + slop; }
    case 'Q5_0': { const d = amax / 16; return d + 16 * f16HalfUlp(d) + slop; }
    case 'Q4_1': { const d = (max - min) / 15; return 0.5 * d + 15 * f16HalfUlp(d) + f16HalfUlp(min) + slop; }
    case 'Q5_1': { const d = (max - min) / 31; return 0.5 * d + 31 * f16HalfUlp(d) + f16HalfUlp(min) + slop; }
    default: return undefined;
  }
}

/*
 * RMSE of the round trip relative to the row's RMS, worst row of each kind: [normal / uniform rows,
 * rows with outliers] (an outlier widens its block's scale, so its neighbours lose precision).
 * Measured on these seeds: Q4_0 0.0900 / 0.162, Q4_1 0.0820 / 0.109, Q5_0 0.0442 / 0.0927,
 * Q5_1 0.0392 / 0.0566, Q8_0 0.00547 / 0.0111, Q2_K 0.304 / 0.342, Q3_K 0.158 / 0.177,
 * Q4_K 0.0746 / 0.107, Q5_K 0.0376 / 0.0527, Q6_K 0.0223 / 0.0323, IQ4_NL 0.0781 / 0.126,
 * IQ4_XS 0.0810 / 0.129 (the std 1e-3 rows are the worst plain ones for Q8_0 and Q6_K: their
 * f16 super-scale falls into the subnormals). The limits are those ×1.5. Each extra bit roughly
 * halves the error; a wrong scale, level table or bit position would exceed these many times over.
 */
const RMSE_LIMIT: Record<GgmlQuantType, [number, number]> = {
  Q4_0: [0.135, 0.24], Q4_1: [0.123, 0.165], Q5_0: [0.066, 0.14], Q5_1: [0.059, 0.085], Q8_0: [0.0082, 0.017],
  Q2_K: [0.46, 0.51], Q3_K: [0.24, 0.27], Q4_K: [0.11, 0.16], Q5_K: [0.056, 0.08], Q6_K: [0.033, 0.049],
  IQ4_NL: [0.12, 0.19], IQ4_XS: [0.12, 0.19],
};
/*
 * Worst |error| in a block (the K-quants and IQ4_XS: a super-block of 256) relative to that block's
 * max |x|, for the types whose scales are fitted (no closed form like legacyBound's). Measured:
 * Q2_K 0.324, Q3_K 0.222, Q4_K 0.0925, Q5_K 0.0452, Q6_K 0.0351, IQ4_NL 0.110, IQ4_XS 0.143;
 * limits ×1.5.
 */
const MAX_ERR_LIMIT: Partial<Record<GgmlQuantType, number>> = {
  Q2_K: 0.49, Q3_K: 0.33, Q4_K: 0.14, Q5_K: 0.068, Q6_K: 0.053, IQ4_NL: 0.165, IQ4_XS: 0.21,
};

describe('quantizeGgml → dequantizeGgml round trip', () => {
  it.each(TYPES)('%s: error within the format bounds; all-zero rows come back zero', (type) => {
    const { block } = GGML_LAYOUTS[type];
    const random = rng(seedOf(`roundtrip:${type}`));
    const rows = 4;
    for (const c of ROW_CASES) {
      const x = new Float32Array(rows * ROUND_TRIP_COLS);
      for (let r = 0; r < rows; r++) x.set(c.make(random, ROUND_TRIP_COLS), r * ROUND_TRIP_COLS);
      const q = quantizeGgml(tensor(x, [rows, ROUND_TRIP_COLS]), type);
      const y = dequantizeGgml(q).toFloat32Array();
      let worstRel = 0;
      for (let r = 0; r < rows; r++) {
        let se = 0, ss = 0;
        for (let i = r * ROUND_TRIP_COLS; i < (r + 1) * ROUND_TRIP_COLS; i++) {
          se += (y[i] - x[i]) ** 2;
          ss += x[i] ** 2;
        }
        worstRel = Math.max(worstRel, Math.sqrt(se / ss));
      }
      const limit = RMSE_LIMIT[type][c.outliers ? 1 : 0];
      if (!(worstRel <= limit)) throw new Error(`${type}, ${c.name}: relative RMSE ${worstRel} > ${limit}`);
      // Per block: the closed-form bound of the legacy types, the measured one of the others.
      for (let b0 = 0; b0 < x.length; b0 += block) {
        const xb = x.subarray(b0, b0 + block);
        let amax = 0, err = 0;
        for (let i = 0; i < block; i++) {
          amax = Math.max(amax, Math.abs(xb[i]));
          err = Math.max(err, Math.abs(y[b0 + i] - xb[i]));
        }
        const bound = legacyBound(type, xb) ?? MAX_ERR_LIMIT[type]! * amax;
        if (!(err <= bound)) throw new Error(`${type}, ${c.name}: block at ${b0} has max error ${err} > bound ${bound} (amax ${amax})`);
      }
    }
    // All-zero rows (alone and between non-zero rows) dequantize to exact zeros.
    const x = new Float32Array(3 * ROUND_TRIP_COLS);
    x.set(normalRow(1)(random, ROUND_TRIP_COLS), 0);
    x.set(normalRow(1)(random, ROUND_TRIP_COLS), 2 * ROUND_TRIP_COLS);
    const y = dequantizeGgml(quantizeGgml(tensor(x, [3, ROUND_TRIP_COLS]), type)).toFloat32Array();
    const zeroRow = y.subarray(ROUND_TRIP_COLS, 2 * ROUND_TRIP_COLS);
    expect(zeroRow.every((v) => v === 0)).toBe(true);
    expect(y.subarray(0, ROUND_TRIP_COLS).some((v) => v !== 0)).toBe(true);
  });

  it('the async quantizer gives the same bytes, a 1-D input is one row', async () => {
    for (const type of TYPES) {
      const x = normalRow(1)(rng(seedOf(`async-q:${type}`)), 2 * 256);
      const sync = quantizeGgml(tensor(x, [2, 256]), type);
      const asyncQ = await quantizeGgmlAsync(tensor(x, [2, 256]), type);
      expectSameBytes(asyncQ.data.toTypedArray() as Uint8Array, sync.data.toTypedArray() as Uint8Array, `${type} async`);
      const vector = quantizeGgml(tensor(x, [512]), type);
      expect(vector.shape).toEqual([1, 512]);
      expectSameBytes(vector.data.toTypedArray() as Uint8Array, sync.data.toTypedArray() as Uint8Array, `${type} 1-D`);
    }
  });
});

// ---- c. bit exactness against llama.cpp's own quantizers and dequantizers ----

const GGML_LIB = path.resolve(__dirname, '..', '..', '..', 'benchref', 'node_modules', '@node-llama-cpp', 'linux-x64', 'bins', 'linux-x64', 'libggml-base.so');
const ORACLE_SOURCE = path.join(__dirname, '..', 'helpers', 'ggml-oracle.c');

/** Compiles the oracle into a temp dir, or says why it cannot run here. */
function buildOracle(): { dir: string; bin: string } | { skip: string } {
  if (!fs.existsSync(GGML_LIB)) return { skip: `node-llama-cpp's libggml-base.so is not installed beside the checkout (${GGML_LIB})` };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ggml-oracle-'));
  const bin = path.join(dir, 'ggml-oracle');
  try {
    execFileSync('cc', ['-O1', '-o', bin, ORACLE_SOURCE, '-ldl'], { stdio: 'pipe' });
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    return { skip: `no C compiler could build test/helpers/ggml-oracle.c (${(e as Error).message.split('\n')[0]})` };
  }
  return { dir, bin };
}

const oracle = buildOracle();
afterAll(() => {
  if ('dir' in oracle) fs.rmSync(oracle.dir, { recursive: true, force: true });
});

/**
 * One oracle run on n elements: 'quantize' (quantize_row_*_ref over consecutive blocks), 'chunk'
 * (ggml_quantize_chunk on rows of `row` elements) or 'dequantize' (dequantize_row_*).
 */
function runOracle(mode: 'quantize' | 'chunk' | 'dequantize', type: GgmlQuantType, n: number, input: Uint8Array, outBytes: number, row = n): Uint8Array {
  if (!('bin' in oracle)) throw new Error(oracle.skip);
  const inFile = path.join(oracle.dir, `${mode}-${type}.in`);
  const outFile = path.join(oracle.dir, `${mode}-${type}.out`);
  fs.writeFileSync(inFile, input);
  execFileSync(oracle.bin, [GGML_LIB, mode, type.toLowerCase().replace(/_k$/, '_K'), String(n), inFile, outFile], {
    stdio: 'pipe',
    env: { ...process.env, GGML_ORACLE_BYTES: String(outBytes), GGML_ORACLE_ROW: String(row) },
  });
  const out = new Uint8Array(fs.readFileSync(outFile));
  expect(out.length).toBe(outBytes);
  return out;
}

const asBytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const asFloats = (b: Uint8Array): Float32Array => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

/** Value distributions for the oracle rows: ordinary, skewed, degenerate, and ranges that stress f16. */
const ORACLE_DISTRIBUTIONS: ((random: () => number, n: number) => Float32Array)[] = [
  normalRow(1),
  normalRow(1e-3),
  normalRow(100),
  normalRow(1e-6), // scales in f16's subnormals
  normalRow(1e7), // scales past f16's max: d stored as infinity, as ggml stores it
  normalRow(3e3), // Q2_K / Q3_K scale products near f16's top
  (random, n) => fill(n, () => random() * 2 - 1),
  (random, n) => fill(n, () => random() * 5 + 1), // all positive, offset
  (random, n) => fill(n, () => -random() * 0.01), // all negative
  (random, n) => fill(n, () => gaussian(random) * (random() < 0.02 ? 50 : 1)), // outliers
  (random, n) => fill(n, () => (random() < 0.1 ? gaussian(random) : 0)), // sparse: zero sub-blocks
  (_random, n) => new Float32Array(n), // all zero
  (random, n) => new Float32Array(n).fill(random() - 0.5), // constant
  (random, n) => fill(n, () => Math.round(gaussian(random) * 4)), // on a grid: exact ties
  (random, n) => fill(n, () => gaussian(random) * 1e-17), // below GROUP_MAX_EPS
  (random, n) => fill(n, (i) => (i % 32 < 16 ? 0 : gaussian(random))), // half-zero blocks
];

describe("bit exactness against llama.cpp's ggml (ggml_quantize_chunk, quantize_row_*_ref, dequantize_row_*)", () => {
  if ('skip' in oracle) {
    it.skip(`llama.cpp oracle (${oracle.skip})`, () => undefined);
    return;
  }

  it.each(TYPES)('%s: 240 rows of mixed lengths and distributions quantize to the same bytes and dequantize to the same bits', (type) => {
    const { block, bytes } = GGML_LAYOUTS[type];
    const random = rng(seedOf(`oracle:${type}`));
    // Rows grouped by length (1..8 blocks) so each group is one quantizeGgml matrix; all rows go to
    // the oracle as one flat run of blocks, one call per function (every quantizer here treats each
    // block on its own, so ggml_quantize_chunk on rows of one block gives what it gives on longer
    // rows; one call instead of one per length keeps the process starts down).
    const groups: { len: number; x: Float32Array; rows: number }[] = [];
    let rowCount = 0;
    for (let g = 0; g < 8; g++) {
      const len = (g + 1) * block;
      const rows = 30;
      const x = new Float32Array(rows * len);
      for (let r = 0; r < rows; r++) {
        const dist = ORACLE_DISTRIBUTIONS[(r + g) % ORACLE_DISTRIBUTIONS.length];
        x.set(dist(random, len), r * len);
      }
      groups.push({ len, x, rows });
      rowCount += rows;
    }
    expect(rowCount).toBeGreaterThanOrEqual(200);
    const n = groups.reduce((s, g) => s + g.x.length, 0);
    const flat = new Float32Array(n);
    groups.reduce((at, g) => (flat.set(g.x, at), at + g.x.length), 0);

    const ours = new Uint8Array((n / block) * bytes);
    groups.reduce((at, g) => {
      const q = quantizeGgml(tensor(g.x, [g.rows, g.len]), type);
      ours.set(q.data.toTypedArray() as Uint8Array, at);
      return at + q.nbytes;
    }, 0);
    const theirs = runOracle('chunk', type, n, asBytes(flat), ours.length, block); // llama-quantize's bytes
    expectSameBytes(ours, theirs, `${type} quantized bytes vs ggml_quantize_chunk`);
    // The same as the _ref, for every type whose llama-quantize path is the _ref: all but IQ4_NL,
    // where ggml_quantize_chunk runs quantize_iq4_nl (trial scales, levels re-picked).
    if (type !== 'IQ4_NL') expectSameBytes(ours, runOracle('quantize', type, n, asBytes(flat), ours.length), `${type} quantized bytes vs quantize_row_${type.toLowerCase()}_ref`);

    // Dequantize ggml's bytes and random blocks (every bit pattern of the quant fields) both ways.
    const randomData = randomBlocks(random, type, 64);
    for (const [what, data] of [['quantized rows', theirs], ['random blocks', randomData]] as const) {
      const m = (data.length / bytes) * block;
      const expected = asFloats(runOracle('dequantize', type, m, data, m * 4));
      expectSameBits(dequantizeRef(type, data), expected, `${type} ${what}: JS reference vs ggml`);
      for (const isa of SUPPORTED_ISAS) {
        const got = withIsa(isa, () => dequantizeGgml(blocksTensor(type, data, [1, m])).toFloat32Array());
        expectSameBits(got, expected, `${type} ${what} on ${isa} vs ggml`);
      }
    }
  });
});

// ---- d. ggmlMatmul ----

// Panels of 2^18 floats (the default is 2^22), so that test-sized weights take several.
let panelFloats = 0;
beforeAll(() => {
  panelFloats = runtime.setPanelFloats(1 << 18);
});
afterAll(() => runtime.setPanelFloats(panelFloats));

/*
 * W shapes that take both of the product's panel loops (native/kernels/cpu/panel_matmul.cpp) with
 * more than one panel each: a wide W (K > N, M > 1) goes by column panels of ~2^18 / N columns, so
 * [300, 1024] gives two (768 + 256 for the K-quants); a tall one goes by row panels of 2^18 / K rows,
 * so [1100, 256] gives two (1024 + 76). a · W (no transB) always goes by row panels.
 */
const MATMUL_TYPES: GgmlQuantType[] = ['Q4_K', 'Q6_K', 'Q8_0', 'Q5_0', 'IQ4_XS'];
const MATMUL_SHAPES: [number, number][] = [[300, 1024], [1100, 256]];
const MATMUL_M = [1, 3, 17];
// One random W per shape, shared by the types (random numbers are the slow part of these tests).
const matmulWeights = new Map<string, Float32Array>();
function matmulWeight(N: number, K: number): Float32Array {
  const key = `${N}x${K}`;
  let w = matmulWeights.get(key);
  if (!w) {
    const random = rng(seedOf(`matmul:${key}`));
    w = fill(N * K, () => gaussian(random) * 0.05);
    matmulWeights.set(key, w);
  }
  return w;
}

/** a [M, K] · Wᵀ (W [N, K] row-major) in float64: [M, N]. */
function productT(a: Float32Array, M: number, w: Float32Array, N: number, K: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0, ai = i * K, wn = n * K; k < K; k++) s += a[ai + k] * w[wn + k];
      out[i * N + n] = s;
    }
  }
  return out;
}

/** a [M, N] · W (W [N, K] row-major) in float64: [M, K]. */
function productN(a: Float32Array, M: number, w: Float32Array, N: number, K: number): Float64Array {
  const out = new Float64Array(M * K);
  for (let i = 0; i < M; i++) {
    for (let n = 0; n < N; n++) {
      const ain = a[i * N + n];
      for (let k = 0, o = i * K, wn = n * K; k < K; k++) out[o + k] += ain * w[wn + k];
    }
  }
  return out;
}

function expectClose(got: Float32Array, expected: Float64Array, label: string): void {
  expect(got.length).toBe(expected.length);
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  expect(scale).toBeGreaterThan(0);
  let worst = 0, at = 0;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - expected[i]);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  if (!(worst < 1e-5 * scale)) throw new Error(`${label}: element ${at} is ${got[at]}, reference ${expected[at]} (error ${worst / scale} of max |reference| ${scale})`);
}

describe('ggmlMatmul against a float64 product with the dequantized weight', () => {
  it.each(MATMUL_TYPES)('%s: a·Wᵀ and a·W, f32 and bf16, on every instruction set', (type) => {
    for (const [N, K] of MATMUL_SHAPES) {
      const random = rng(seedOf(`matmul:${type}:${N}x${K}`));
      const q = quantizeGgml(tensor(matmulWeight(N, K), [N, K]), type);
      const wq = dequantizeRef(type, q.data.toTypedArray() as Uint8Array);
      const wBf16 = wq.map(toBf16);
      for (const M of MATMUL_M) {
        const aT = fill(M * K, () => gaussian(random));
        const aN = fill(M * N, () => gaussian(random));
        for (const [compute, wv] of [['f32', wq], ['bf16', wBf16]] as const) {
          const yT = productT(aT, M, wv, N, K);
          const yN = productN(aN, M, wv, N, K);
          for (const isa of SUPPORTED_ISAS) {
            const label = `${type} W [${N}, ${K}], M ${M}, ${compute}, ${isa}`;
            withIsa(isa, () => {
              const gotT = ggmlMatmul(tensor(aT, [M, K]), q, { transB: true, computeDtype: compute });
              expect(gotT.shape).toEqual([M, N]);
              expectClose(gotT.toFloat32Array(), yT, `${label}, transB`);
              const gotN = ggmlMatmul(tensor(aN, [M, N]), q, { computeDtype: compute });
              expect(gotN.shape).toEqual([M, K]);
              expectClose(gotN.toFloat32Array(), yN, label);
            });
          }
        }
      }
    }
  });
  reportUnsupported('ggmlMatmul');

  it('bf16 compute differs from f32 compute (the rounding is really applied)', () => {
    const random = rng(7);
    const w = fill(64 * 256, () => gaussian(random));
    const q = quantizeGgml(tensor(w, [64, 256]), 'Q8_0');
    const a = tensor(fill(3 * 256, () => gaussian(random)), [3, 256]);
    const f32 = ggmlMatmul(a, q, { transB: true }).toFloat32Array();
    const bf16 = ggmlMatmul(a, q, { transB: true, computeDtype: 'bf16' }).toFloat32Array();
    expect(f32.some((v, i) => v !== bf16[i])).toBe(true);
  });

  it('the async variants return the same values', async () => {
    for (const type of MATMUL_TYPES) {
      const random = rng(seedOf(`matmul-async:${type}`));
      const [N, K] = [300, 1024];
      const q = quantizeGgml(tensor(matmulWeight(N, K), [N, K]), type);
      for (const computeDtype of ['f32', 'bf16'] as const) {
        const aT = tensor(fill(3 * K, () => gaussian(random)), [3, K]);
        const aN = tensor(fill(3 * N, () => gaussian(random)), [3, N]);
        const label = `${type} ${computeDtype} async`;
        expectSameBits((await ggmlMatmulAsync(aT, q, { transB: true, computeDtype })).toFloat32Array(), ggmlMatmul(aT, q, { transB: true, computeDtype }).toFloat32Array(), `${label}, transB`);
        expectSameBits((await ggmlMatmulAsync(aN, q, { computeDtype })).toFloat32Array(), ggmlMatmul(aN, q, { computeDtype }).toFloat32Array(), label);
      }
    }
  });
});

// ---- e. bad input ----

describe('bad input', () => {
  const x = (shape: [number, number]) => tensor(new Float32Array(shape[0] * shape[1]).fill(0.25), shape);

  it.each(['Q7_K', 'F16', 'q4_k', ''])('an unknown type %j is E_UNSUPPORTED', (type) => {
    expectPeftError(() => quantizeGgml(x([2, 256]), type as GgmlQuantType), 'E_UNSUPPORTED');
    expectPeftError(() => new GgmlTensor(tensor(new Uint8Array(288), [288]), type as GgmlQuantType, [2, 256]), 'E_UNSUPPORTED');
  });

  it('columns that are not whole blocks are E_SHAPE', () => {
    expectPeftError(() => quantizeGgml(x([2, 48]), 'Q4_0'), 'E_SHAPE');
    expectPeftError(() => quantizeGgml(x([2, 288]), 'Q4_K'), 'E_SHAPE'); // whole 32s, not whole 256s
    expectPeftError(() => quantizeGgml(tensor(new Float32Array(100)), 'Q8_0'), 'E_SHAPE');
    expectPeftError(() => new GgmlTensor(tensor(new Uint8Array(18 * 3), [54]), 'Q4_0', [1, 96 + 16]), 'E_SHAPE');
    // The same sizes in whole blocks are accepted: the failures above are about the block.
    expect(quantizeGgml(x([2, 64]), 'Q4_0').shape).toEqual([2, 64]);
    expect(quantizeGgml(x([2, 512]), 'Q4_K').shape).toEqual([2, 512]);
  });

  it.each([
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [-Infinity, '-Infinity'],
  ])('%s in the input of quantizeGgml is E_RANGE naming the element', async (bad, name) => {
    for (const type of ['Q4_0', 'Q6_K', 'IQ4_XS'] as const) {
      const v = new Float32Array(3 * 256).fill(0.5);
      v[256 + 37] = bad; // row 1, column 37
      const message = new RegExp(`element ${256 + 37}\\b.*row 1.*${name.replace('-', '\\-')}`);
      expectPeftError(() => quantizeGgml(tensor(v, [3, 256]), type), 'E_RANGE', message);
      await expect(quantizeGgmlAsync(tensor(v, [3, 256]), type)).rejects.toMatchObject({ code: 'E_RANGE' });
    }
  });

  it('a data tensor of the wrong size is E_SHAPE in new GgmlTensor', () => {
    const ok = () => new GgmlTensor(tensor(new Uint8Array(2 * 144), [288]), 'Q4_K', [2, 256]);
    expect(ok().shape).toEqual([2, 256]);
    expectPeftError(() => new GgmlTensor(tensor(new Uint8Array(2 * 144 - 1), [287]), 'Q4_K', [2, 256]), 'E_SHAPE');
    expectPeftError(() => new GgmlTensor(tensor(new Uint8Array(2 * 144 + 144), [432]), 'Q4_K', [2, 256]), 'E_SHAPE');
    // f32 data of the right byte count is not blocks either (E_SHAPE or E_DTYPE, both fit).
    expect(() => new GgmlTensor(tensor(new Float32Array(72), [72]), 'Q4_K', [2, 256])).toThrow(PeftError);
    expectPeftError(() => new GgmlTensor(tensor(new Uint8Array(288), [288]), 'Q4_K', [512]), 'E_SHAPE');
  });

  it('mismatched inner dimensions in ggmlMatmul are E_SHAPE', async () => {
    const q = quantizeGgml(x([8, 256]), 'Q8_0'); // W [N 8, K 256]
    expect(ggmlMatmul(tensor(new Float32Array(2 * 256), [2, 256]), q, { transB: true }).shape).toEqual([2, 8]);
    expect(ggmlMatmul(tensor(new Float32Array(2 * 8), [2, 8]), q).shape).toEqual([2, 256]);
    expectPeftError(() => ggmlMatmul(tensor(new Float32Array(2 * 8), [2, 8]), q, { transB: true }), 'E_SHAPE');
    expectPeftError(() => ggmlMatmul(tensor(new Float32Array(2 * 256), [2, 256]), q), 'E_SHAPE');
    expectPeftError(() => ggmlMatmul(tensor(new Float32Array(2 * 255), [2, 255]), q, { transB: true }), 'E_SHAPE');
    await expect(ggmlMatmulAsync(tensor(new Float32Array(2 * 8), [2, 8]), q, { transB: true })).rejects.toMatchObject({ code: 'E_SHAPE' });
  });

  it('a non-f32 input to quantizeGgml is E_DTYPE', () => {
    const v = new Float32Array(2 * 256).fill(0.5);
    for (const dtype of ['bf16', 'f16'] as const) {
      expectPeftError(() => quantizeGgml(tensor(v, [2, 256], dtype), 'Q4_K'), 'E_DTYPE');
    }
    expectPeftError(() => quantizeGgml(tensor(new Int32Array(2 * 256), [2, 256]), 'Q4_K'), 'E_DTYPE');
    expect(quantizeGgml(tensor(v, [2, 256]), 'Q4_K').type).toBe('Q4_K');
  });
});
