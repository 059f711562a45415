import { ops, tensor, type Tensor } from '../../lib';
import { SUPPORTED_ISAS, reportUnsupported, withIsa } from '../helpers/isa';
import { randomArray, rng } from '../helpers/random';
import { maxRelativeError, referenceMatmul } from '../helpers/reference';

// (m, n, k, r): rank 1, odd sizes, and sizes that straddle the GEMM's register tiles and K block.
const SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [3, 5, 7, 2],
  [17, 33, 65, 8],
  [40, 24, 300, 16],
  [64, 96, 48, 64],
];

interface LoraCase {
  x: Tensor;
  w: Tensor;
  a: Tensor;
  b: Tensor;
  dy: Tensor;
  scale: number;
  m: number;
  n: number;
  k: number;
  r: number;
}

function makeCase(seed: number, [m, n, k, r]: [number, number, number, number], wDtype: 'f32' | 'bf16' = 'f32'): LoraCase {
  const random = rng(seed);
  return {
    x: tensor(randomArray(random, m * k), [m, k]),
    w: tensor(randomArray(random, n * k), [n, k], wDtype),
    a: tensor(randomArray(random, r * k), [r, k]),
    b: tensor(randomArray(random, n * r), [n, r]),
    dy: tensor(randomArray(random, m * n), [m, n]),
    scale: 16 / r,
    m,
    n,
    k,
    r,
  };
}

/** The merged-weight formulation, W' = W + s·B·A, which the fused kernel must never build. */
function mergedWeight(c: LoraCase): Float64Array {
  const ba = referenceMatmul(c.b.toFloat32Array(), c.a.toFloat32Array(), c.n, c.k, c.r, false, false);
  const w = c.w.toFloat32Array();
  return ba.map((v, i) => w[i] + c.scale * v);
}

describe('ops.lowrankForward / lowrankBackward against the merged-weight reference', () => {
  SHAPES.forEach((shape, index) => {
    for (const wDtype of ['f32', 'bf16'] as const) {
      it(`m=${shape[0]} n=${shape[1]} k=${shape[2]} r=${shape[3]} W ${wDtype}`, () => {
        const c = makeCase(100 + index, shape, wDtype);
        const x = c.x.toFloat32Array();
        const dy = c.dy.toFloat32Array();
        const wMerged = mergedWeight(c);
        // y = x·W'ᵀ; xa = x·Aᵀ
        const yRef = referenceMatmul(x, wMerged, c.m, c.n, c.k, false, true);
        const xaRef = referenceMatmul(x, c.a.toFloat32Array(), c.m, c.r, c.k, false, true);
        // dx = dy·W'; dA = s·(dy·B)ᵀ·x = s·Bᵀ·dyᵀ·x; dB = s·dyᵀ·(x·Aᵀ)
        const dxRef = referenceMatmul(dy, wMerged, c.m, c.k, c.n, false, false);
        const dyB = referenceMatmul(dy, c.b.toFloat32Array(), c.m, c.r, c.n, false, false);
        const daRef = referenceMatmul(dyB, x, c.r, c.k, c.m, true, false, c.scale);
        const dbRef = referenceMatmul(dy, xaRef, c.n, c.r, c.m, true, false, c.scale);
        for (const isa of SUPPORTED_ISAS) {
          withIsa(isa, () => {
            const { y, xa } = ops.lowrankForward(c.x, c.w, c.a, c.b, { scale: c.scale });
            expect(y.shape).toEqual([c.m, c.n]);
            expect(xa.shape).toEqual([c.m, c.r]);
            expect(maxRelativeError(y.toFloat32Array(), yRef)).toBeLessThan(2e-5);
            expect(maxRelativeError(xa.toFloat32Array(), xaRef)).toBeLessThan(2e-5);
            const g = ops.lowrankBackward(c.dy, c.x, xa, c.w, c.a, c.b, { scale: c.scale });
            expect(g.dx!.shape).toEqual([c.m, c.k]);
            expect(maxRelativeError(g.dx!.toFloat32Array(), dxRef)).toBeLessThan(2e-5);
            expect(maxRelativeError(g.gradA.toFloat32Array(), daRef)).toBeLessThan(2e-5);
            expect(maxRelativeError(g.gradB.toFloat32Array(), dbRef)).toBeLessThan(2e-5);
          });
        }
      });
    }
  });
  reportUnsupported('lowrank');

  it('gradients match central finite differences of L = Σ y ⊙ dy', () => {
    const c = makeCase(7, [5, 6, 9, 3]);
    const loss = (x: Tensor, a: Tensor, b: Tensor): number => {
      const { y } = ops.lowrankForward(x, c.w, a, b, { scale: c.scale });
      const yv = y.toFloat32Array();
      const dy = c.dy.toFloat32Array();
      let s = 0;
      for (let i = 0; i < yv.length; i++) s += yv[i] * dy[i];
      return s;
    };
    const { xa } = ops.lowrankForward(c.x, c.w, c.a, c.b, { scale: c.scale });
    const g = ops.lowrankBackward(c.dy, c.x, xa, c.w, c.a, c.b, { scale: c.scale });
    const h = 1e-2; // L is linear in each argument, so central differences are exact up to rounding
    const check = (which: 'x' | 'a' | 'b', analytic: Float32Array) => {
      const base = { x: c.x, a: c.a, b: c.b }[which];
      const values = base.toFloat32Array();
      for (let i = 0; i < values.length; i++) {
        const plus = values.slice();
        plus[i] += h;
        const minus = values.slice();
        minus[i] -= h;
        const args = (v: Float32Array) => {
          const t = tensor(v, base.shape);
          return which === 'x' ? loss(t, c.a, c.b) : which === 'a' ? loss(c.x, t, c.b) : loss(c.x, c.a, t);
        };
        const numeric = (args(plus) - args(minus)) / (2 * h);
        expect(Math.abs(numeric - analytic[i])).toBeLessThan(2e-3 * (1 + Math.abs(analytic[i])));
      }
    };
    check('x', g.dx!.toFloat32Array());
    check('a', g.gradA.toFloat32Array());
    check('b', g.gradB.toFloat32Array());
  });

  it('accumulates into given gradient tensors and skips dx when not needed', () => {
    const c = makeCase(9, [8, 12, 10, 4]);
    const { xa } = ops.lowrankForward(c.x, c.w, c.a, c.b, { scale: c.scale });
    const once = ops.lowrankBackward(c.dy, c.x, xa, c.w, c.a, c.b, { scale: c.scale });
    const gradA = tensor(once.gradA.toFloat32Array(), [4, 10]);
    const gradB = tensor(once.gradB.toFloat32Array(), [12, 4]);
    const twice = ops.lowrankBackward(c.dy, c.x, xa, c.w, c.a, c.b, {
      scale: c.scale,
      gradA,
      gradB,
      accumulate: true,
      needDx: false,
    });
    expect(twice.dx).toBeNull();
    expect(twice.gradA).toBe(gradA);
    const doubled = once.gradA.toFloat32Array().map((v) => 2 * v);
    expect(maxRelativeError(gradA.toFloat32Array(), doubled)).toBeLessThan(1e-6);
    expect(maxRelativeError(gradB.toFloat32Array(), once.gradB.toFloat32Array().map((v) => 2 * v))).toBeLessThan(1e-6);
  });
});
