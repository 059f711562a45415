/**
 * quantMatmul: products with a 4-bit weight, dequantized a panel at a time inside the product,
 * against float64 products with the reference-dequantized weight.
 */
import { dequantize, PeftError, quantMatmul, quantMatmulAsync, quantize, runtime, tensor } from '../../lib';
import { rng } from '../helpers/random';
import { dequantize4Ref, gaussianArray, NF4_CODE, quantize4Ref } from './bnb-reference';

// The multi-panel paths on test-sized weights: panels of 2^18 floats (the default is 2^22).
let panelFloats = 0;
beforeAll(() => {
  panelFloats = runtime.setPanelFloats(1 << 18);
});
afterAll(() => runtime.setPanelFloats(panelFloats));

function matmul64(a: Float32Array, b: Float32Array, m: number, k: number, n: number, transB: boolean): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p] * (transB ? b[j * k + p] : b[p * n + j]);
      out[i * n + j] = s;
    }
  }
  return out;
}

function expectClose(actual: Float32Array, expected: Float64Array, label: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= 1e-4 * (1 + Math.abs(expected[i])))) {
      throw new Error(`${label}: element ${i} is ${actual[i]}, reference ${expected[i]}`);
    }
  }
}

describe('quantMatmul against float64 products with the dequantized weight', () => {
  // [N, K] weights: one panel, and several panels starting mid-row and mid-byte (odd K).
  const shapes: [number, number, number][] = [
    [7, 24, 40],
    [3, 130, 4097],
    [2, 300, 1025],
  ];
  for (const [m, n, k] of shapes) {
    it(`W [${n}, ${k}], ${m} rows: a·Wᵀ and a·W`, async () => {
      const wValues = gaussianArray(rng(n), n * k, 0.05);
      const ref = quantize4Ref(wValues, 64, 'nf4');
      const w = dequantize4Ref(ref.packed, ref.absmax, NF4_CODE, 64, n * k);
      const q = quantize(tensor(wValues, [n, k]), { quant_type: 'nf4', blocksize: 64, double_quant: false });
      const x = gaussianArray(rng(m), m * k);
      const y = quantMatmul(tensor(x, [m, k]), q, { transB: true });
      expect(y.shape).toEqual([m, n]);
      expectClose(y.toFloat32Array(), matmul64(x, w, m, k, n, true), 'a·Wᵀ');
      const dy = gaussianArray(rng(m + 1), m * n);
      const dx = await quantMatmulAsync(tensor(dy, [m, n]), q);
      expect(dx.shape).toEqual([m, k]);
      expectClose(dx.toFloat32Array(), matmul64(dy, w, m, n, k, false), 'a·W');
    });
  }

  it('takes a bf16 input for a·Wᵀ, and a double-quantized weight', () => {
    const [m, n, k] = [4, 70, 96];
    const q = quantize(tensor(gaussianArray(rng(8), n * k), [n, k]), { quant_type: 'fp4', double_quant: true, blocksize: 32 });
    const x = tensor(gaussianArray(rng(9), m * k), [m, k], 'bf16');
    const wBack = dequantize(q).toFloat32Array();
    expectClose(quantMatmul(x, q, { transB: true }).toFloat32Array(), matmul64(x.toFloat32Array(), wBack, m, k, n, true), 'bf16');
  });

  it('rejects mismatched shapes and non-2-D weights', () => {
    const q = quantize(tensor(new Float32Array(64), [8, 8]), { quant_type: 'nf4' });
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return (err as PeftError).code;
      }
      return 'no error';
    };
    expect(code(() => quantMatmul(tensor(new Float32Array(14), [2, 7]), q, { transB: true }))).toBe('E_SHAPE');
    expect(code(() => quantMatmul(tensor(new Float32Array(8), [8]), q))).toBe('E_SHAPE');
    const q3 = quantize(tensor(new Float32Array(64), [2, 4, 8]), { quant_type: 'nf4' });
    expect(code(() => quantMatmul(tensor(new Float32Array(16), [2, 8]), q3, { transB: true }))).toBe('E_SHAPE');
  });
});
