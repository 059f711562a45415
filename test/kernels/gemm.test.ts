import { ops, runtime, tensor, zeros, type DType, type Tensor } from '../../lib';
import { ALL_ISAS, SUPPORTED_ISAS, reportUnsupported, withIsa } from '../helpers/isa';
import { randomArray, rng } from '../helpers/random';
import { referenceMatmul } from '../helpers/reference';

// (M, N, K): 1, odd sizes, sizes that are not multiples of any register tile (4x16, 6x16, 12x32),
// and sizes past each cache block (kc 256/512, mc 128/144, nc 2048/4096).
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 17, 3],
  [7, 5, 13],
  [6, 16, 256],
  [13, 33, 257],
  [64, 64, 64],
  [100, 37, 300],
  [5, 300, 7],
  [150, 49, 513],
  // Whole AVX2 A slivers only (transA: the eight-row vector pack, a K tail of 3).
  [144, 40, 83],
  [301, 20, 10],
  [3, 4200, 20],
];
const DTYPE_PAIRS: [DType, DType][] = [
  ['f32', 'f32'],
  ['bf16', 'bf16'],
  ['f32', 'bf16'],
];

interface Case {
  a: Tensor;
  b: Tensor;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
}

function makeCase(seed: number, m: number, n: number, k: number, transA: boolean, transB: boolean, dtypes: [DType, DType]): Case {
  const random = rng(seed);
  const a = tensor(randomArray(random, m * k), transA ? [k, m] : [m, k], dtypes[0]);
  const b = tensor(randomArray(random, k * n), transB ? [n, k] : [k, n], dtypes[1]);
  return { a, b, m, n, k, transA, transB };
}

/** The reference on the operands' stored values (bf16 already rounded) and Σ|a·b| for the tolerance. */
function expected(c: Case, alpha = 1, c0?: Float32Array) {
  const av = c.a.toFloat32Array();
  const bv = c.b.toFloat32Array();
  const ref = referenceMatmul(av, bv, c.m, c.n, c.k, c.transA, c.transB, alpha, c0);
  const mag = referenceMatmul(av.map(Math.abs), bv.map(Math.abs), c.m, c.n, c.k, c.transA, c.transB, Math.abs(alpha));
  return { ref, mag };
}

function expectClose(actual: Float32Array, ref: Float64Array, mag: Float64Array, label: string, c0?: Float32Array): void {
  let worst = 0;
  let where = -1;
  for (let i = 0; i < ref.length; i++) {
    const bound = 1e-5 * (mag[i] + (c0 ? Math.abs(c0[i]) : 0)) + 1e-30;
    const err = Math.abs(actual[i] - ref[i]) / bound;
    if (!(err <= worst)) {
      worst = err;
      where = i;
    }
  }
  if (!(worst <= 1)) {
    throw new Error(`${label}: element ${where} is ${actual[where]}, expected ${ref[where]} (error ${worst.toFixed(2)}x the tolerance)`);
  }
}

describe('ops.matmul against a float64 reference, every variant', () => {
  let seed = 1;
  for (const [m, n, k] of SHAPES) {
    for (const [da, db] of DTYPE_PAIRS) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const s = seed++;
          const label = `M=${m} N=${n} K=${k} ${da}x${db}${transA ? ' transA' : ''}${transB ? ' transB' : ''}`;
          it(label, () => {
            const c = makeCase(s, m, n, k, transA, transB, [da, db]);
            const { ref, mag } = expected(c);
            const byIsa = new Map<string, Float32Array>();
            for (const isa of SUPPORTED_ISAS) {
              const out = withIsa(isa, () => ops.matmul(c.a, c.b, { transA, transB }));
              expect(out.shape).toEqual([m, n]);
              expect(out.dtype).toBe('f32');
              const values = out.toFloat32Array();
              expectClose(values, ref, mag, `${isa} ${label}`);
              byIsa.set(isa, values);
            }
            // Every variant against the scalar reference kernel, same tolerance.
            const scalar = byIsa.get('scalar')!;
            for (const [isa, values] of byIsa) {
              const scalar64 = Float64Array.from(scalar);
              expectClose(values, scalar64, mag, `${isa} vs scalar ${label}`);
            }
          });
        }
      }
    }
  }
  reportUnsupported('matmul');
});

describe('ops.matmul modes', () => {
  it('alpha and accumulate (beta = 1) add into out', () => {
    const random = rng(99);
    for (const isa of SUPPORTED_ISAS) {
      for (const [m, n, k] of [[13, 33, 257], [1, 1, 1], [150, 49, 40]] as const) {
        const c = makeCase(7 + m, m, n, k, false, true, ['f32', 'f32']);
        const c0 = randomArray(random, m * n);
        const out = tensor(c0, [m, n]);
        const returned = withIsa(isa, () => ops.matmul(c.a, c.b, { transB: true, alpha: 0.5, out, accumulate: true }));
        expect(returned).toBe(out);
        const { ref, mag } = expected(c, 0.5, c0);
        expectClose(out.toFloat32Array(), ref, mag, `${isa} accumulate`, c0);
      }
    }
  });

  it('out without accumulate overwrites', () => {
    const c = makeCase(5, 9, 11, 7, false, false, ['f32', 'f32']);
    const out = tensor(new Float32Array(99).fill(1e6), [9, 11]);
    ops.matmul(c.a, c.b, { out });
    const { ref, mag } = expected(c);
    expectClose(out.toFloat32Array(), ref, mag, 'overwrite');
  });

  it("covers a linear layer's three products: y = x·Wᵀ, dx = dy·W, dW = dyᵀ·x", () => {
    const random = rng(3);
    const [m, nOut, kIn] = [37, 29, 41];
    const x = tensor(randomArray(random, m * kIn), [m, kIn]);
    const w = tensor(randomArray(random, nOut * kIn), [nOut, kIn]);
    const dy = tensor(randomArray(random, m * nOut), [m, nOut]);
    const xv = x.toFloat32Array(), wv = w.toFloat32Array(), dyv = dy.toFloat32Array();
    const y = ops.matmul(x, w, { transB: true }).toFloat32Array();
    const dx = ops.matmul(dy, w).toFloat32Array();
    const dW = ops.matmul(dy, x, { transA: true }).toFloat32Array();
    // Written out element by element from the definitions.
    let worst = 0;
    for (let i = 0; i < m; i++) for (let o = 0; o < nOut; o++) {
      let s = 0;
      for (let p = 0; p < kIn; p++) s += xv[i * kIn + p] * wv[o * kIn + p];
      worst = Math.max(worst, Math.abs(y[i * nOut + o] - s));
    }
    for (let i = 0; i < m; i++) for (let p = 0; p < kIn; p++) {
      let s = 0;
      for (let o = 0; o < nOut; o++) s += dyv[i * nOut + o] * wv[o * kIn + p];
      worst = Math.max(worst, Math.abs(dx[i * kIn + p] - s));
    }
    for (let o = 0; o < nOut; o++) for (let p = 0; p < kIn; p++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += dyv[i * nOut + o] * xv[i * kIn + p];
      worst = Math.max(worst, Math.abs(dW[o * kIn + p] - s));
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it('K = 0 gives zeros, or leaves out unchanged when accumulating', () => {
    const a = zeros([3, 0]);
    const b = zeros([0, 4]);
    expect(Array.from(ops.matmul(a, b).toFloat32Array())).toEqual(new Array(12).fill(0));
    const out = tensor(new Float32Array(12).fill(2), [3, 4]);
    ops.matmul(a, b, { out, accumulate: true });
    expect(Array.from(out.toFloat32Array())).toEqual(new Array(12).fill(2));
  });

  it('gives bit-identical results with 1 and with several threads', () => {
    const c = makeCase(11, 200, 300, 257, false, true, ['f32', 'f32']);
    const threads = runtime.numThreads();
    try {
      runtime.setNumThreads(1);
      const one = ops.matmul(c.a, c.b, { transB: true }).toFloat32Array();
      runtime.setNumThreads(Math.max(2, threads));
      const many = ops.matmul(c.a, c.b, { transB: true }).toFloat32Array();
      expect(Buffer.from(many.buffer).equals(Buffer.from(one.buffer))).toBe(true);
    } finally {
      runtime.setNumThreads(threads);
    }
  });

  // A K far longer than the output is wide runs as K chunks summed at the end (gemm_driver.cpp,
  // k_chunks); an output wider than one N block per thread runs as one task per N block. More
  // than 32 rows, so the packed path runs rather than the few-row one (gemv).
  const SPLITS: [string, number, number, number][] = [
    ['split over K', 48, 40, 20000],
    ['split over K, ragged', 37, 19, 17001],
    ['N blocks as tasks', 40, 9000, 33],
    // One B sliver wide: the AVX2 and AVX-512 tiles read A in place (whole row tiles; the partial
    // last one packed).
    ['one sliver wide', 100, 16, 300],
    ['one AVX-512 sliver wide', 61, 32, 45],
    ['one sliver wide, ragged', 47, 9, 77],
  ];
  for (const [what, m, n, k] of SPLITS) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      it(`${what}: M=${m} N=${n} K=${k}${transA ? ' transA' : ''}${transB ? ' transB' : ''}, every variant and thread count`, () => {
        const c = makeCase(m * 7 + n + k, m, n, k, transA, transB, ['f32', 'f32']);
        const c0 = randomArray(rng(k), m * n);
        const { ref, mag } = expected(c, 0.5, c0);
        const threads = runtime.numThreads();
        try {
          for (const isa of SUPPORTED_ISAS) {
            const results: Float32Array[] = [];
            for (const t of [1, 2, 3]) {
              runtime.setNumThreads(t);
              const out = tensor(c0, [m, n]);
              withIsa(isa, () => ops.matmul(c.a, c.b, { transA, transB, alpha: 0.5, out, accumulate: true }));
              results.push(out.toFloat32Array());
            }
            expectClose(results[0], ref, mag, `${isa} ${what}`, c0);
            for (const r of results.slice(1)) expect(Buffer.from(r.buffer).equals(Buffer.from(results[0].buffer))).toBe(true);
          }
        } finally {
          runtime.setNumThreads(threads);
        }
      });
    }
  }

  it('lists every variant it knows', () => {
    expect(ALL_ISAS).toEqual(expect.arrayContaining(SUPPORTED_ISAS));
    expect(SUPPORTED_ISAS[0]).toBe('scalar');
  });
});
