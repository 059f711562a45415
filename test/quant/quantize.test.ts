/**
 * quantize / dequantize against an independent implementation of bitsandbytes' algorithm
 * (bnb-reference.ts): every block size, both types, odd lengths, all-zero blocks, double
 * quantization, bf16 / f16 sources; round-trip error bounds; NaN / Inf and bad options.
 */
import { dequantize, dequantizeAsync, PeftError, quantize, quantizeAsync, tensor, zeros, type QuantizedTensor } from '../../lib';
import { rng } from '../helpers/random';
import {
  createDynamicMap,
  dequantize4Ref,
  dequantizeNestedRef,
  FP4_CODE,
  gaussianArray,
  nearestIndices,
  NF4_CODE,
  quantize4Ref,
  quantizeNestedRef,
} from './bnb-reference';

const BLOCK_SIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096];
const TYPES = ['nf4', 'fp4'] as const;

function u8(t: { toTypedArray(): unknown }): Uint8Array {
  return t.toTypedArray() as Uint8Array;
}

function expectSameFloats(actual: Float32Array, expected: Float32Array, label: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    // Exact equality (0 and -0 compare equal: an all-zero NF4 block dequantizes to -1 × 0).
    if (!(actual[i] === expected[i])) throw new Error(`${label}: element ${i} is ${actual[i]}, reference ${expected[i]}`);
  }
}

function expectSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  expect(actual.length).toBe(expected.length);
  const at = actual.findIndex((v, i) => v !== expected[i]);
  if (at >= 0) throw new Error(`${label}: byte ${at} is 0x${actual[at].toString(16)}, reference 0x${expected[at].toString(16)}`);
}

describe('code tables', () => {
  it('quant_map is bitsandbytes NF4 table and the FP4 table built from its bit layout', () => {
    const x = tensor(new Float32Array(64));
    expect(Array.from(quantize(x, { quant_type: 'nf4' }).quant_map.toFloat32Array())).toEqual(NF4_CODE);
    const fp4 = Array.from(quantize(x, { quant_type: 'fp4' }).quant_map.toFloat32Array());
    expect(fp4.map((v) => (Object.is(v, -0) ? 0 : v))).toEqual(FP4_CODE.map((v) => (Object.is(v, -0) ? 0 : v)));
    expect(Object.is(fp4[8], -0)).toBe(true); // bitsandbytes' table holds -0 at code 8
  });

  it('nested_quant_map is create_dynamic_map(signed=True): 256 sorted float32 values', () => {
    const q = quantize(tensor(new Float32Array(64).fill(1)), { quant_type: 'nf4', double_quant: true });
    const map = Array.from(q.nested!.quant_map.toFloat32Array());
    expect(map).toEqual(createDynamicMap());
    expect(map[0]).toBe(Math.fround(-0.99296875));
    expect(map[127]).toBe(0);
    expect(map[255]).toBe(1);
    expect(new Set(map).size).toBe(256);
  });

  it("the published thresholds sit at the midpoints of neighbouring sorted codes (to float precision)", () => {
    // A value just above / below each midpoint lands on the upper / lower code.
    for (const [type, code] of [['nf4', NF4_CODE], ['fp4', FP4_CODE]] as const) {
      const sorted = [...new Set(code.map((v) => (Object.is(v, -0) ? 0 : v)))].sort((a, b) => a - b);
      const probes: number[] = [];
      for (let i = 0; i + 1 < sorted.length; i++) {
        const mid = (sorted[i] + sorted[i + 1]) / 2;
        probes.push(mid - 1e-6, mid + 1e-6);
      }
      const values = Float32Array.from([...probes, 1]); // the 1 fixes absmax = 1
      const q = quantize(tensor(values), { quant_type: type, blocksize: 64 });
      const back = dequantize(q).toFloat32Array();
      probes.forEach((p, i) => {
        const nearest = sorted.reduce((best, v) => (Math.abs(v - p) < Math.abs(best - p) ? v : best));
        expect([i, back[i] + 0]).toEqual([i, nearest + 0]); // FP4's code 8 is -0
      });
    }
  });
});

describe('quantize / dequantize against the reference, every block size', () => {
  for (const type of TYPES) {
    for (const blocksize of BLOCK_SIZES) {
      it(`${type}, blocksize ${blocksize}, odd length with a partial block`, () => {
        const random = rng(blocksize + (type === 'nf4' ? 1 : 2));
        const n = 3 * blocksize + 17;
        const x = gaussianArray(random, n, 0.05);
        const ref = quantize4Ref(x, blocksize, type);
        const q = quantize(tensor(x, [n]), { quant_type: type, blocksize });
        expect(q.data.shape).toEqual([Math.ceil(n / 2)]);
        expect(q.absmax.shape).toEqual([Math.ceil(n / blocksize)]);
        expectSameBytes(u8(q.data), ref.packed, 'packed');
        expectSameFloats(q.absmax.toFloat32Array(), ref.absmax, 'absmax');
        const code = type === 'nf4' ? NF4_CODE : FP4_CODE;
        const back = dequantize(q);
        expect(back.shape).toEqual([n]);
        expectSameFloats(back.toFloat32Array(), dequantize4Ref(ref.packed, ref.absmax, code, blocksize, n), 'dequantized');
      });
    }
  }

  it('keeps the shape of a 3-D tensor and blocks over its row-major flattening', () => {
    const x = gaussianArray(rng(5), 2 * 3 * 37);
    const q = quantize(tensor(x, [2, 3, 37]), { quant_type: 'nf4', blocksize: 32 });
    expect(q.shape).toEqual([2, 3, 37]);
    const ref = quantize4Ref(x, 32, 'nf4');
    expectSameBytes(u8(q.data), ref.packed, 'packed');
    const back = dequantize(q);
    expect(back.shape).toEqual([2, 3, 37]);
    expectSameFloats(back.toFloat32Array(), dequantize4Ref(ref.packed, ref.absmax, NF4_CODE, 32, x.length), 'dequantized');
  });

  it('quantizes bf16 and f16 sources from their exact values and restores the dtype on request', () => {
    for (const dtype of ['bf16', 'f16'] as const) {
      const source = tensor(gaussianArray(rng(9), 1000, 0.02), [10, 100], dtype);
      const exact = source.toFloat32Array(); // the bf16 / f16 values, widened exactly
      const q = quantize(source, { quant_type: 'nf4', blocksize: 64 });
      expect(q.dtype).toBe(dtype);
      const ref = quantize4Ref(exact, 64, 'nf4');
      expectSameBytes(u8(q.data), ref.packed, `${dtype} packed`);
      const f32 = dequantize4Ref(ref.packed, ref.absmax, NF4_CODE, 64, 1000);
      const restored = dequantize(q, { dtype });
      expect(restored.dtype).toBe(dtype);
      // bitsandbytes casts its f32 product to the dtype (round to nearest even), as tensor(..., dtype) does.
      expect(Array.from(restored.toTypedArray() as Uint16Array)).toEqual(Array.from(tensor(f32, [10, 100], dtype).toTypedArray() as Uint16Array));
    }
  });
});

describe('edge cases', () => {
  it('odd lengths: the last byte pairs the final element with a quantized 0 (NF4 code 7, FP4 code 0)', () => {
    for (const n of [1, 3, 33, 65, 4097]) {
      const x = gaussianArray(rng(n), n);
      for (const type of TYPES) {
        const q = quantize(tensor(x), { quant_type: type, blocksize: 32 });
        const packed = u8(q.data);
        expect(packed.length).toBe((n + 1) / 2);
        expect([n, type, packed[packed.length - 1] & 15]).toEqual([n, type, type === 'nf4' ? 7 : 0]);
        expectSameBytes(packed, quantize4Ref(x, 32, type).packed, `${type} n=${n}`);
      }
    }
  });

  it('all-zero blocks: absmax 0, code 0 everywhere (as bitsandbytes: x·(1/0) is NaN), dequantized to 0', () => {
    const x = gaussianArray(rng(3), 64 * 4 + 5);
    x.fill(0, 64, 128); // block 1
    x.fill(0, 256); // the partial last block, pad included
    for (const type of TYPES) {
      const q = quantize(tensor(x), { quant_type: type, blocksize: 64 });
      const absmax = q.absmax.toFloat32Array();
      expect([absmax[1], absmax[4]]).toEqual([0, 0]);
      const packed = u8(q.data);
      expect(Array.from(packed.subarray(32, 64)).every((b) => b === 0)).toBe(true);
      expect(Array.from(packed.subarray(128)).every((b) => b === 0)).toBe(true);
      const back = dequantize(q).toFloat32Array();
      expect(Array.from(back.subarray(64, 128)).every((v) => v === 0)).toBe(true);
      expect(Array.from(back.subarray(256)).every((v) => v === 0)).toBe(true);
      expectSameBytes(packed, quantize4Ref(x, 64, type).packed, type);
    }
  });

  it('dequantizes into a given f32 tensor of the shape', () => {
    const x = gaussianArray(rng(6), 6 * 50);
    const q = quantize(tensor(x, [6, 50]), { quant_type: 'nf4' });
    const out = zeros([6, 50]);
    expect(dequantize(q, { out })).toBe(out);
    expectSameFloats(out.toFloat32Array(), dequantize(q).toFloat32Array(), 'out');
    expect(() => dequantize(q, { out: zeros([300]) })).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => dequantize(q, { out, dtype: 'bf16' })).toThrow(expect.objectContaining({ code: 'E_DTYPE' }));
  });

  it('an empty tensor quantizes to empty parts and back', () => {
    const q = quantize(tensor(new Float32Array(0), [0, 4]), { quant_type: 'nf4', double_quant: true });
    expect([q.data.size, q.absmax.size, q.nested!.absmax.size]).toEqual([0, 0, 0]);
    expect(dequantize(q).shape).toEqual([0, 4]);
  });
});

describe('double quantization (compress_statistics)', () => {
  const map = createDynamicMap();

  function checkNested(q: QuantizedTensor, plainAbsmax: Float32Array, label: string): void {
    const ref = quantizeNestedRef(plainAbsmax, 256, map);
    const nested = q.nested!;
    expect(nested.blocksize).toBe(256);
    expect(nested.offset).toBe(ref.offset);
    expectSameFloats(nested.absmax.toFloat32Array(), ref.nestedAbsmax, `${label} nested_absmax`);
    const codes = u8(q.absmax);
    expect(q.absmax.dtype).toBe('u8');
    codes.forEach((c, i) => {
      // The nearest map value; at an exact tie bitsandbytes' search may pick either neighbour.
      if (!nearestIndices(map, ref.scaled[i]).includes(c)) {
        throw new Error(`${label}: scale ${i} got code ${c}, nearest ${nearestIndices(map, ref.scaled[i])} for ${ref.scaled[i]}`);
      }
    });
  }

  for (const type of TYPES) {
    it(`${type}: 700 blocks (three nested blocks, one partial), scales and values against the reference`, () => {
      const n = 64 * 699 + 31;
      const x = gaussianArray(rng(11), n, 0.03);
      for (let b = 0; b < 699; b += 7) for (let i = 0; i < 64; i++) x[b * 64 + i] *= 1 + (b % 5); // spread the scales
      const plain = quantize4Ref(x, 64, type);
      const q = quantize(tensor(x), { quant_type: type, blocksize: 64, double_quant: true });
      expect(q.double_quant).toBe(true);
      expectSameBytes(u8(q.data), plain.packed, 'packed');
      checkNested(q, plain.absmax, type);
      const scales = dequantizeNestedRef(u8(q.absmax), q.nested!.absmax.toFloat32Array(), map, q.nested!.offset, 256);
      const expected = dequantize4Ref(plain.packed, scales, type === 'nf4' ? NF4_CODE : FP4_CODE, 64, n);
      expectSameFloats(dequantize(q).toFloat32Array(), expected, 'dequantized');
    });
  }

  it('equal scales: every absmax equals the mean, the nested block is all 0 and codes 0 (NaN path), exact restore', () => {
    const x = new Float32Array(64 * 10);
    for (let b = 0; b < 10; b++) x[b * 64 + 3] = b % 2 ? 0.5 : -0.5;
    const q = quantize(tensor(x), { quant_type: 'nf4', double_quant: true });
    expect(q.nested!.offset).toBe(0.5);
    expect(Array.from(q.nested!.absmax.toFloat32Array())).toEqual([0]);
    expect(Array.from(u8(q.absmax))).toEqual(new Array(10).fill(0));
    expectSameFloats(dequantize(q).toFloat32Array(), x, 'restored');
  });

  it('stores at most 4.13 bits per parameter with blocksize 64 (4.127)', () => {
    const q = quantize(tensor(gaussianArray(rng(1), 64 * 256 * 4)), { quant_type: 'nf4', double_quant: true });
    expect(q.bitsPerParameter).toBeCloseTo(4 + 8 / 64 + 32 / (64 * 256), 10);
    expect(q.bitsPerParameter).toBeLessThanOrEqual(4.13);
    const plain = quantize(tensor(gaussianArray(rng(1), 64 * 256)), { quant_type: 'nf4' });
    expect(plain.bitsPerParameter).toBe(4.5);
  });
});

describe('round-trip error', () => {
  // Each value lands on its nearest code, so |x − x̂| ≤ absmax · (largest gap between codes) / 2.
  const halfGap = { nf4: (1 - 0.6961928009986877) / 2, fp4: (1 - 8 / 12) / 2 };
  for (const type of TYPES) {
    for (const doubleQuant of [false, true]) {
      it(`${type}${doubleQuant ? ', double-quantized' : ''}: elementwise bound, and bitsandbytes' mean-error bounds on N(0, 1)`, () => {
        const n = 256 * 1024;
        const x = gaussianArray(rng(21), n);
        const q = quantize(tensor(x, [256, 1024]), { quant_type: type, blocksize: 64, double_quant: doubleQuant });
        const back = dequantize(q).toFloat32Array();
        const plainAbsmax = quantize4Ref(x, 64, type).absmax;
        let errSum = 0;
        let relSum = 0;
        for (let i = 0; i < n; i++) {
          const err = Math.abs(x[i] - back[i]);
          // Double quantization perturbs the scale by at most half a nested step (< 1% of it here).
          const bound = plainAbsmax[Math.floor(i / 64)] * halfGap[type] * (doubleQuant ? 1.01 : 1) + 1e-6;
          if (!(err <= bound + (doubleQuant ? 0.01 * Math.abs(x[i]) : 0))) throw new Error(`element ${i}: error ${err} above ${bound}`);
          errSum += err;
          relSum += err / (Math.abs(x[i]) + 1e-8);
        }
        // bitsandbytes' test_4bit_quant bounds for blocksize <= 64 on randn data.
        expect(errSum / n).toBeLessThan(0.1);
        expect(relSum / n).toBeLessThan(0.28);
      });
    }
  }
});

describe('errors', () => {
  it('NaN or Inf input is E_RANGE naming the flattened index', () => {
    const cases: [number, number, string][] = [
      [NaN, 5, 'NaN at index 5'],
      [Infinity, 130, 'Infinity at index 130'],
      [-Infinity, 4999, '-Infinity at index 4999'],
    ];
    for (const [value, index, text] of cases) {
      for (const dtype of ['f32', 'bf16'] as const) {
        const x = gaussianArray(rng(index), 5000);
        x[index] = value;
        if (index < 4000) x[4000] = NaN; // a later one: the first is reported
        const t = tensor(x, [50, 100], dtype);
        expect(() => quantize(t, { quant_type: 'fp4', blocksize: 128 })).toThrow(text);
        try {
          quantize(t, { quant_type: 'nf4' });
        } catch (err) {
          expect((err as PeftError).code).toBe('E_RANGE');
        }
      }
    }
  });

  it('the async forms reject the same way and otherwise match the sync results', async () => {
    const x = gaussianArray(rng(4), 3000);
    const q = await quantizeAsync(tensor(x), { quant_type: 'nf4', double_quant: true });
    const sync = quantize(tensor(x), { quant_type: 'nf4', double_quant: true });
    expectSameBytes(u8(q.data), u8(sync.data), 'async packed');
    expectSameFloats((await dequantizeAsync(q)).toFloat32Array(), dequantize(sync).toFloat32Array(), 'async dequantized');
    x[7] = NaN;
    await expect(quantizeAsync(tensor(x), { quant_type: 'nf4' })).rejects.toMatchObject({ code: 'E_RANGE' });
  });

  it('bad options and inputs', () => {
    const x = tensor(new Float32Array(64));
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return (err as PeftError).code;
      }
      return 'no error';
    };
    expect(code(() => quantize(x, {} as never))).toBe('E_ARGUMENT');
    expect(code(() => quantize(x, { quant_type: 'int4' as never }))).toBe('E_ARGUMENT');
    expect(code(() => quantize(x, { quant_type: 'nf4', blocksize: 48 }))).toBe('E_RANGE');
    expect(code(() => quantize(x, { quant_type: 'nf4', blocksize: 16 }))).toBe('E_RANGE');
    expect(code(() => quantize(x, { quant_type: 'nf4', blocksize: 8192 }))).toBe('E_RANGE');
    expect(code(() => quantize(x, { quant_type: 'nf4', double_quant: 1 as never }))).toBe('E_ARGUMENT');
    expect(code(() => quantize(tensor(new Int32Array(64)), { quant_type: 'nf4' }))).toBe('E_DTYPE');
    expect(code(() => quantize({} as never, { quant_type: 'nf4' }))).toBe('E_ARGUMENT');
    const q = quantize(x, { quant_type: 'nf4' });
    expect(code(() => dequantize(q, { dtype: 'i32' as never }))).toBe('E_DTYPE');
    expect(code(() => dequantize({} as never))).toBe('E_ARGUMENT');
    q.dispose();
    expect(code(() => dequantize(q))).toBe('E_DISPOSED');
  });
});
