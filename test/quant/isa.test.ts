/**
 * Every instruction-set variant of the 4-bit loops against the scalar reference: identical bytes,
 * scales and dequantized values, including the scalar tails, all-zero blocks and NaN reports.
 */
import { dequantize, quantize, quantMatmul, runtime, tensor, ops, type PeftError, type QuantizedTensor } from '../../lib';
import { SUPPORTED_ISAS, reportUnsupported, withIsa } from '../helpers/isa';
import { rng } from '../helpers/random';
import { gaussianArray } from './bnb-reference';

// The multi-panel paths on test-sized weights: panels of 2^18 floats (the default is 2^22).
let panelFloats = 0;
beforeAll(() => {
  panelFloats = runtime.setPanelFloats(1 << 18);
});
afterAll(() => runtime.setPanelFloats(panelFloats));

// Lengths around the vector groups of 16 (bytes, pairs, elements), odd ones, and several blocks.
const LENGTHS = [1, 15, 31, 32, 33, 63, 64, 65, 127, 200, 1000, 4096 + 33, 70001];
const BLOCK_SIZES = [32, 64, 256, 4096];

interface Snapshot {
  data: number[];
  absmax: number[];
  nested: number[];
  values: Float32Array;
}

function snapshot(q: QuantizedTensor): Snapshot {
  return {
    data: Array.from(q.data.toTypedArray() as Uint8Array),
    absmax: Array.from(q.absmax.dtype === 'u8' ? (q.absmax.toTypedArray() as Uint8Array) : q.absmax.toFloat32Array()),
    nested: q.nested ? [q.nested.offset, ...Array.from(q.nested.absmax.toFloat32Array())] : [],
    values: dequantize(q).toFloat32Array(),
  };
}

function inputs(): { name: string; x: Float32Array }[] {
  const out: { name: string; x: Float32Array }[] = [];
  for (const n of LENGTHS) {
    const x = gaussianArray(rng(n), n, 0.1);
    if (n >= 200) x.fill(0, 64, 128); // an all-zero block (NaN path) for blocksizes 32 and 64
    out.push({ name: `n=${n}`, x });
  }
  return out;
}

function same(a: Snapshot, b: Snapshot, label: string): void {
  expect([label, a.data.length, a.absmax.length]).toEqual([label, b.data.length, b.absmax.length]);
  const byte = a.data.findIndex((v, i) => v !== b.data[i]);
  if (byte >= 0) throw new Error(`${label}: byte ${byte} is ${a.data[byte]}, scalar ${b.data[byte]}`);
  expect(a.absmax).toEqual(b.absmax);
  expect(a.nested).toEqual(b.nested);
  const at = a.values.findIndex((v, i) => !(v === b.values[i]));
  if (at >= 0) throw new Error(`${label}: value ${at} is ${a.values[at]}, scalar ${b.values[at]}`);
}

describe('4-bit quantize / dequantize: each variant equals scalar', () => {
  for (const isa of SUPPORTED_ISAS.filter((i) => i !== 'scalar')) {
    it(`${isa}`, () => {
      for (const { name, x } of inputs()) {
        for (const type of ['nf4', 'fp4'] as const) {
          for (const blocksize of BLOCK_SIZES) {
            for (const double_quant of [false, true]) {
              const options = { quant_type: type, blocksize, double_quant };
              const t = tensor(x);
              const expected = withIsa('scalar', () => snapshot(quantize(t, options)));
              const actual = withIsa(isa, () => snapshot(quantize(t, options)));
              same(actual, expected, `${isa} ${name} ${type} blocksize ${blocksize} double_quant ${double_quant}`);
            }
          }
        }
      }
    });

    it(`${isa}: reports the same first NaN / Inf index`, () => {
      for (const index of [0, 14, 15, 16, 47, 999]) {
        const x = gaussianArray(rng(index), 1000);
        x[index] = index % 2 ? Infinity : NaN;
        const message = (which: typeof isa | 'scalar') =>
          withIsa(which, () => {
            try {
              quantize(tensor(x), { quant_type: 'nf4', blocksize: 32 });
            } catch (err) {
              return `${(err as PeftError).code}: ${(err as Error).message}`;
            }
            return 'no error';
          });
        expect(message(isa)).toBe(message('scalar'));
        expect(message(isa)).toContain(`at index ${index}`);
      }
    });

    it(`${isa}: the 4-bit matmul (odd row lengths start panels mid-byte) equals scalar`, () => {
      const [m, n, k] = [3, 130, 4097]; // panels of 63 rows: the second starts at an odd element
      const w = quantize(tensor(gaussianArray(rng(2), n * k, 0.1), [n, k]), { quant_type: 'nf4', blocksize: 32 });
      const x = tensor(gaussianArray(rng(3), m * k), [m, k]);
      const expected = withIsa('scalar', () => quantMatmul(x, w, { transB: true }).toFloat32Array());
      const actual = withIsa(isa, () => quantMatmul(x, w, { transB: true }).toFloat32Array());
      const reference = ops.matmul(x, withIsa('scalar', () => dequantize(w)), { transB: true }).toFloat32Array();
      for (let i = 0; i < expected.length; i++) {
        expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(expected[i])));
        expect(Math.abs(actual[i] - reference[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(reference[i])));
      }
    });
  }
  reportUnsupported('4-bit quantization');

  it('the active variant is restored after the comparisons', () => {
    expect(SUPPORTED_ISAS).toContain(runtime.getIsa());
  });
});
