/**
 * The small-M path of the GEMM (native/kernels/cpu/gemv.h): products with a few rows of A stream B
 * without packing it. ops.matmul takes that path for M <= 32 when B is transposed (y = x·Wᵀ) and
 * for M <= 8 otherwise (dx = dy·W); rows past 8 go through the loops in chunks of 8.
 */
import { ops, runtime, tensor, type DType, type Tensor } from '../../lib';
import { SUPPORTED_ISAS, reportUnsupported, withIsa } from '../helpers/isa';
import { randomArray, rng } from '../helpers/random';
import { maxRelativeError, referenceMatmul } from '../helpers/reference';

// (N, K): single elements, K below, at and past one vector (8 and 16 lanes) and the unrolled step
// (32 and 64), N below and past the 16-column split unit and the passes of dx = dy·W (512 to 4096
// columns), and sizes with enough work (N·K >= 64K) to be split over two threads (dx = dy·W: also
// N >= 2048).
const SHAPES: [number, number][] = [
  [1, 1],
  [5, 7],
  [16, 8],
  [17, 15],
  [3, 33],
  [33, 70],
  [300, 257],
  [1100, 61],
  [2100, 40],
];
const ROWS = [1, 2, 3, 4, 5, 6, 7, 8];
// Rows past 8 on the transposed path: whole and partial chunks of 8.
const CHUNKED: [number, number, number][] = [
  [9, 40, 300],
  [13, 130, 33],
  [32, 200, 576],
];
const DTYPE_PAIRS: [DType, DType][] = [
  ['f32', 'f32'],
  ['f32', 'bf16'],
  ['bf16', 'bf16'],
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

/** The float64 product of the stored (already bf16-rounded) values, and Σ|a·b| for the tolerance. */
function expected(c: Case, alpha = 1, c0?: Float32Array) {
  const av = c.a.toFloat32Array();
  const bv = c.b.toFloat32Array();
  const ref = referenceMatmul(av, bv, c.m, c.n, c.k, c.transA, c.transB, alpha, c0);
  const mag = referenceMatmul(av.map(Math.abs), bv.map(Math.abs), c.m, c.n, c.k, c.transA, c.transB, Math.abs(alpha));
  if (c0) c0.forEach((v, i) => (mag[i] += Math.abs(v)));
  return { ref, mag };
}

/** |actual − ref| <= 1e-5 · Σ|a·b| for every element (f32 accumulation over K <= 576 stays well inside). */
function expectClose(actual: Float32Array, ref: ArrayLike<number>, mag: Float64Array, label: string): void {
  for (let i = 0; i < mag.length; i++) {
    const err = Math.abs(actual[i] - ref[i]);
    if (!(err <= 1e-5 * mag[i] + 1e-30)) {
      throw new Error(`${label}: element ${i} is ${actual[i]}, expected ${ref[i]} (|error| ${err}, bound ${1e-5 * mag[i]})`);
    }
  }
}

/** Every variant against the float64 reference, then against the scalar variant. */
function checkAllVariants(c: Case, label: string): void {
  const { ref, mag } = expected(c);
  const byIsa = new Map<string, Float32Array>();
  for (const isa of SUPPORTED_ISAS) {
    const out = withIsa(isa, () => ops.matmul(c.a, c.b, { transA: c.transA, transB: c.transB }));
    expect(out.shape).toEqual([c.m, c.n]);
    const values = out.toFloat32Array();
    expectClose(values, ref, mag, `${isa} ${label}`);
    byIsa.set(isa, values);
  }
  const scalar = byIsa.get('scalar')!;
  for (const [isa, values] of byIsa) expectClose(values, scalar, mag, `${isa} vs scalar ${label}`);
}

describe('ops.matmul with few rows, every variant against float64 and the scalar variant', () => {
  let seed = 1000;
  for (const m of ROWS) {
    for (const [da, db] of DTYPE_PAIRS) {
      for (const transB of [true, false]) {
        const s = seed++;
        it(`M=${m} ${da}x${db}${transB ? ' (x·Wᵀ)' : ' (dy·W)'}`, () => {
          SHAPES.forEach(([n, k], i) => {
            const c = makeCase(s * 16 + i, m, n, k, false, transB, [da, db]);
            checkAllVariants(c, `M=${m} N=${n} K=${k} ${da}x${db}${transB ? ' transB' : ''}`);
          });
        });
      }
    }
  }
  for (const [m, n, k] of CHUNKED) {
    for (const [da, db] of DTYPE_PAIRS) {
      it(`M=${m} N=${n} K=${k} ${da}x${db} (x·Wᵀ, rows in chunks of 8)`, () => {
        checkAllVariants(makeCase(seed++, m, n, k, false, true, [da, db]), `M=${m} ${da}x${db}`);
      });
    }
  }
  it('A transposed or bf16: its rows are gathered before the loops', () => {
    for (const [m, n, k] of [[1, 33, 70], [3, 300, 257], [8, 17, 15], [20, 40, 300]] as const) {
      for (const transB of m <= 8 ? [true, false] : [true]) {
        for (const pair of DTYPE_PAIRS) {
          checkAllVariants(makeCase(seed++, m, n, k, true, transB, pair), `transA M=${m} N=${n} K=${k} ${pair.join('x')}`);
        }
      }
    }
  });
  reportUnsupported('small-M matmul');
});

describe('small-M path: alpha, accumulate and threads', () => {
  it('alpha and accumulate: out = alpha·A·B + out', () => {
    const random = rng(5);
    for (const isa of SUPPORTED_ISAS) {
      for (const [m, transB] of [[1, true], [2, false], [3, true], [4, false], [8, false], [13, true]] as const) {
        for (const db of ['f32', 'bf16'] as const) {
          const c = makeCase(40 + m, m, 300, 77, false, transB, ['f32', db]);
          const c0 = randomArray(random, m * 300);
          const out = tensor(c0, [m, 300]);
          const returned = withIsa(isa, () => ops.matmul(c.a, c.b, { transB, alpha: -0.75, out, accumulate: true }));
          expect(returned).toBe(out);
          const { ref, mag } = expected(c, -0.75, c0);
          expectClose(out.toFloat32Array(), ref, mag, `${isa} M=${m} ${db}${transB ? ' transB' : ''} accumulate`);
        }
      }
    }
  });

  it('without accumulate, out is overwritten and never read (NaN in out does not leak)', () => {
    for (const isa of SUPPORTED_ISAS) {
      for (const transB of [true, false]) {
        const c = makeCase(77, 2, 21, 19, false, transB, ['f32', 'f32']);
        const out = tensor(new Float32Array(42).fill(NaN), [2, 21]);
        withIsa(isa, () => ops.matmul(c.a, c.b, { transB, alpha: 2, out }));
        const { ref, mag } = expected(c, 2);
        expectClose(out.toFloat32Array(), ref, mag, `${isa} overwrite${transB ? ' transB' : ''}`);
      }
    }
  });

  it('K = 0 gives zeros, or leaves out unchanged when accumulating', () => {
    for (const transB of [true, false]) {
      const a = tensor(new Float32Array(0), [1, 0]);
      const b = tensor(new Float32Array(0), transB ? [5, 0] : [0, 5]);
      expect(Array.from(ops.matmul(a, b, { transB }).toFloat32Array())).toEqual([0, 0, 0, 0, 0]);
      const out = tensor(new Float32Array(5).fill(3), [1, 5]);
      ops.matmul(a, b, { transB, out, accumulate: true });
      expect(Array.from(out.toFloat32Array())).toEqual([3, 3, 3, 3, 3]);
    }
  });

  it('gives bit-identical results with 1 and with several threads', () => {
    const threads = runtime.numThreads();
    try {
      for (const m of [1, 2, 3, 4, 13]) {
        for (const transB of m <= 8 ? [true, false] : [true]) {
          for (const db of ['f32', 'bf16'] as const) {
            const [n, k] = transB ? [1100, 61] : [2100, 40];
            const c = makeCase(90 + m, m, n, k, false, transB, ['f32', db]);
            runtime.setNumThreads(1);
            const one = ops.matmul(c.a, c.b, { transB }).toFloat32Array();
            runtime.setNumThreads(Math.max(2, threads));
            const many = ops.matmul(c.a, c.b, { transB }).toFloat32Array();
            expect([m, transB, db, Buffer.from(many.buffer).equals(Buffer.from(one.buffer))]).toEqual([m, transB, db, true]);
          }
        }
      }
    } finally {
      runtime.setNumThreads(threads);
    }
  });

  it('runs both terms of the fused LoRA product (one token) against the merged weight', () => {
    const random = rng(11);
    const [m, n, k, r, scale] = [1, 300, 257, 8, 2];
    const x = tensor(randomArray(random, m * k), [m, k]);
    const w = tensor(randomArray(random, n * k), [n, k], 'bf16');
    const a = tensor(randomArray(random, r * k), [r, k]);
    const b = tensor(randomArray(random, n * r), [n, r]);
    const dy = tensor(randomArray(random, m * n), [m, n]);
    // W' = W + s·B·A, written out from the definition.
    const ba = referenceMatmul(b.toFloat32Array(), a.toFloat32Array(), n, k, r, false, false);
    const wv = w.toFloat32Array();
    const merged = ba.map((v, i) => wv[i] + scale * v);
    const yRef = referenceMatmul(x.toFloat32Array(), merged, m, n, k, false, true);
    const dxRef = referenceMatmul(dy.toFloat32Array(), merged, m, k, n, false, false);
    for (const isa of SUPPORTED_ISAS) {
      withIsa(isa, () => {
        const { y, xa } = ops.lowrankForward(x, w, a, b, { scale });
        expect(maxRelativeError(y.toFloat32Array(), yRef)).toBeLessThan(2e-5);
        const g = ops.lowrankBackward(dy, x, xa, w, a, b, { scale });
        expect(maxRelativeError(g.dx!.toFloat32Array(), dxRef)).toBeLessThan(2e-5);
      });
    }
  });
});
