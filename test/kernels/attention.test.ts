import { ops, tensor, type Tensor } from '../../lib';
import { randomArray, rng } from '../helpers/random';

interface Dims {
  B: number;
  T: number;
  S: number;
  Hq: number;
  Hkv: number;
  D: number;
}

/** Attention from its definition in float64: out, and L = Σ out ⊙ R for finite differences. */
function reference(d: Dims, q: Float64Array | Float32Array, k: ArrayLike<number>, v: ArrayLike<number>, causal: boolean, mask: number[] | null, scale: number) {
  const out = new Float64Array(d.B * d.T * d.Hq * d.D);
  const group = d.Hq / d.Hkv;
  for (let b = 0; b < d.B; b++)
    for (let h = 0; h < d.Hq; h++) {
      const hk = Math.floor(h / group);
      for (let t = 0; t < d.T; t++) {
        const scores: number[] = [];
        const keys: number[] = [];
        for (let j = 0; j < d.S; j++) {
          if (causal && j > t + d.S - d.T) continue;
          if (mask && !mask[b * d.S + j]) continue;
          let s = 0;
          for (let x = 0; x < d.D; x++) s += q[((b * d.T + t) * d.Hq + h) * d.D + x] * k[((b * d.S + j) * d.Hkv + hk) * d.D + x];
          scores.push(scale * s);
          keys.push(j);
        }
        if (!keys.length) continue;
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, c) => a + c, 0);
        keys.forEach((j, i) => {
          for (let x = 0; x < d.D; x++) out[((b * d.T + t) * d.Hq + h) * d.D + x] += (e[i] / z) * v[((b * d.S + j) * d.Hkv + hk) * d.D + x];
        });
      }
    }
  return out;
}

const CASES: { name: string; d: Dims; causal: boolean; padded?: boolean }[] = [
  { name: 'causal, grouped heads', d: { B: 2, T: 5, S: 5, Hq: 4, Hkv: 2, D: 3 }, causal: true },
  { name: 'bidirectional with padding', d: { B: 2, T: 4, S: 4, Hq: 2, Hkv: 2, D: 5 }, causal: false, padded: true },
  { name: 'causal with padding', d: { B: 2, T: 6, S: 6, Hq: 3, Hkv: 1, D: 4 }, causal: true, padded: true },
  { name: 'queries after a cache (S > T)', d: { B: 1, T: 2, S: 6, Hq: 2, Hkv: 1, D: 8 }, causal: true },
  { name: 'one position, one head', d: { B: 1, T: 1, S: 1, Hq: 1, Hkv: 1, D: 1 }, causal: true },
  // Longer than one block of query rows (64): blocks end inside the causal triangle and the padding.
  { name: 'causal with padding over three query blocks', d: { B: 2, T: 130, S: 130, Hq: 2, Hkv: 1, D: 2 }, causal: true, padded: true },
  { name: 'two query blocks after a cache (S > T)', d: { B: 1, T: 70, S: 100, Hq: 3, Hkv: 3, D: 3 }, causal: true },
];

describe('ops.attention against a float64 reference, and its backward against finite differences', () => {
  CASES.forEach(({ name, d, causal, padded }, index) => {
    it(name, () => {
      const random = rng(300 + index);
      const qv = randomArray(random, d.B * d.T * d.Hq * d.D);
      const kv = randomArray(random, d.B * d.S * d.Hkv * d.D);
      const vv = randomArray(random, d.B * d.S * d.Hkv * d.D);
      const r = randomArray(random, qv.length);
      // Batch 1 pads its first key (left padding) and its last.
      const mask = padded ? Array.from({ length: d.B * d.S }, (_, i) => (i >= d.S && (i % d.S === 0 || i % d.S === d.S - 1) ? 0 : 1)) : null;
      const keyMask = mask ? tensor(Uint8Array.from(mask), [d.B, d.S]) : undefined;
      const scale = 1 / Math.sqrt(d.D);
      const q = tensor(qv, [d.B, d.T, d.Hq, d.D]);
      const k = tensor(kv, [d.B, d.S, d.Hkv, d.D]);
      const v = tensor(vv, [d.B, d.S, d.Hkv, d.D]);
      const { out, lse } = ops.attention(q, k, v, { causal, keyMask });
      const ref = reference(d, qv, kv, vv, causal, mask, scale);
      const got = out.toFloat32Array();
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i])).toBeLessThan(1e-5);

      const grads = ops.attentionBackward(tensor(r, q.shape), q, k, v, out, lse, { causal, keyMask });
      const loss = (qq: ArrayLike<number>, kk: ArrayLike<number>, vvv: ArrayLike<number>) => {
        const o = reference(d, Float64Array.from(qq), kk, vvv, causal, mask, scale);
        return o.reduce((s, x, i) => s + x * r[i], 0);
      };
      const h = 1e-4;
      const checkGrad = (which: 0 | 1 | 2, analytic: Tensor) => {
        const base = [qv, kv, vv][which];
        const a = analytic.toFloat32Array();
        // Every coordinate of the small cases; about 16 spread over the long ones (each costs two full references).
        const stride = base.length > 400 ? Math.ceil(base.length / 16) | 1 : 1;
        for (let i = 0; i < base.length; i += stride) {
          const plus = Float64Array.from(base);
          const minus = Float64Array.from(base);
          plus[i] += h;
          minus[i] -= h;
          const args = (x: Float64Array) => (which === 0 ? loss(x, kv, vv) : which === 1 ? loss(qv, x, vv) : loss(qv, kv, x));
          const numeric = (args(plus) - args(minus)) / (2 * h);
          expect(Math.abs(numeric - a[i])).toBeLessThan(1e-4 * (1 + Math.abs(numeric)));
        }
      };
      checkGrad(0, grads.dq);
      checkGrad(1, grads.dk);
      checkGrad(2, grads.dv);
    });
  });

  it('gives zeros (not NaN) for a query row that sees no key', () => {
    const d = { B: 1, T: 2, S: 2, Hq: 1, Hkv: 1, D: 2 };
    const q = tensor([1, 2, 3, 4], [1, 2, 1, 2]);
    const kv = tensor([1, 1, 2, 2], [1, 2, 1, 2]);
    const keyMask = tensor(new Uint8Array([0, 1]), [1, 2]); // query 0 may only see key 0, which is padding
    const { out, lse } = ops.attention(q, kv, kv, { keyMask });
    expect(Array.from(out.toFloat32Array()).slice(0, 2)).toEqual([0, 0]);
    expect(lse.toFloat32Array()[0]).toBe(-Infinity);
    const g = ops.attentionBackward(tensor(new Float32Array(4).fill(1), q.shape), q, kv, kv, out, lse, { keyMask });
    for (const t of [g.dq, g.dk, g.dv]) expect(t.toFloat32Array().every(Number.isFinite)).toBe(true);
    expect(d.T).toBe(2);
  });

  it('refuses shapes that do not fit together', () => {
    const q = tensor(new Float32Array(2 * 3 * 4), [1, 2, 3, 4]);
    const k = tensor(new Float32Array(2 * 2 * 4), [1, 2, 2, 4]);
    expect(() => ops.attention(q, k, k)).toThrow(/query heads \(3\) to be a multiple of key\/value heads \(2\)/);
    const k1 = tensor(new Float32Array(1 * 1 * 4), [1, 1, 1, 4]);
    expect(() => ops.attention(tensor(new Float32Array(8), [1, 2, 1, 4]), k1, k1)).toThrow(/at least as many key positions/);
  });
});
