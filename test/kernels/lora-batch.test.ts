// ops.loraBatchForward: one call applies the LoRA update of every row's own adapter (serving many
// adapters at once). Checked against a float64 per-row reference, y[i] += s·(x[i]·Aᵀ)·Bᵀ with row i's
// adapter, for decode-like batches (one row per adapter), prefill-like runs of rows, rows without an
// adapter, ranks that differ, on every instruction set; and against per-adapter lowrank products.
import { ops, PeftError, tensor, zeros, type Tensor } from '../../lib';
import { reportUnsupported, SUPPORTED_ISAS, withIsa } from '../helpers/isa';
import { randomArray, rng } from '../helpers/random';

interface Adapter {
  a: Float32Array;
  b: Float32Array;
  r: number;
  scale: number;
}

function makeAdapters(random: () => number, ranks: number[], n: number, k: number): Adapter[] {
  return ranks.map((r, i) => ({ a: randomArray(random, r * k), b: randomArray(random, n * r), r, scale: 0.5 + 0.5 * i }));
}

/** y0 + Σ over rows of s·(x[i]·Aᵀ)·Bᵀ in float64. */
function reference(x: Float32Array, y0: Float32Array, m: number, n: number, k: number, adapters: Adapter[], rows: number[]): Float64Array {
  const out = Float64Array.from(y0);
  for (let i = 0; i < m; i++) {
    const ad = adapters[rows[i]];
    if (!ad) continue;
    const xa = new Float64Array(ad.r);
    for (let j = 0; j < ad.r; j++) for (let p = 0; p < k; p++) xa[j] += x[i * k + p] * ad.a[j * k + p];
    for (let o = 0; o < n; o++) {
      let s = 0;
      for (let j = 0; j < ad.r; j++) s += xa[j] * ad.b[o * ad.r + j];
      out[i * n + o] += ad.scale * s;
    }
  }
  return out;
}

function relError(got: Float32Array, want: Float64Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < got.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return d / m;
}

function asTensors(adapters: Adapter[], n: number, k: number) {
  return adapters.map((ad) => ({ a: tensor(ad.a, [ad.r, k]), b: tensor(ad.b, [n, ad.r]), scale: ad.scale }));
}

const BATCHES: [string, number, (m: number, count: number, random: () => number) => number[]][] = [
  ['decode: every row its own adapter', 12, (m) => Array.from({ length: m }, (_, i) => i % 12)],
  ['random adapters per row, some rows without', 37, (m, count, random) => Array.from({ length: m }, () => Math.floor(random() * (count + 1)) - 1)],
  ['prefill: runs of 9 to 20 rows per adapter', 60, (m) => Array.from({ length: m }, (_, i) => (i < 9 ? 0 : i < 29 ? 3 : i < 40 ? -1 : 1))],
  ['one row', 1, () => [2]],
];

describe.each(SUPPORTED_ISAS)('ops.loraBatchForward on %s', (isa) => {
  it.each(BATCHES)('%s: equals the float64 per-row reference', (_, m, rowsOf) => {
    withIsa(isa, () => {
      const random = rng(m * 31 + 7);
      const [n, k] = [48, 72];
      const adapters = makeAdapters(random, [4, 8, 16, 8, 4, 16, 8, 4, 16, 8, 4, 2], n, k);
      const rows = rowsOf(m, adapters.length, random);
      const x = randomArray(random, m * k);
      const y0 = randomArray(random, m * n);
      const out = tensor(y0.slice(), [m, n]);
      const y = ops.loraBatchForward(tensor(x, [m, k]), asTensors(adapters, n, k), rows, { out });
      expect(y).toBe(out);
      const want = reference(x, y0, m, n, k, adapters, rows);
      expect(relError(y.toFloat32Array(), want)).toBeLessThan(1e-6);
      // Rows without an adapter are left exactly as they were.
      rows.forEach((r, i) => {
        if (r === -1) expect(Array.from(y.toFloat32Array().subarray(i * n, (i + 1) * n))).toEqual(Array.from(y0.subarray(i * n, (i + 1) * n)));
      });
    });
  });
});
reportUnsupported('ops.loraBatchForward');

describe('ops.loraBatchForward', () => {
  it('equals, for each adapter\'s rows, the fused LoRA layer\'s update (lowrankForward with a zero base)', () => {
    const random = rng(3);
    const [m, n, k] = [20, 32, 64];
    const adapters = makeAdapters(random, [8, 16], n, k);
    const rows = Array.from({ length: m }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const x = randomArray(random, m * k);
    const y = ops.loraBatchForward(tensor(x, [m, k]), asTensors(adapters, n, k), rows).toFloat32Array();
    for (const [index, ad] of adapters.entries()) {
      const mine = rows.map((r, i) => (r === index ? i : -1)).filter((i) => i >= 0);
      const xs = tensor(Float32Array.from(mine.flatMap((i) => Array.from(x.subarray(i * k, (i + 1) * k)))), [mine.length, k]);
      const { y: fused } = ops.lowrankForward(xs, zeros([n, k]), tensor(ad.a, [ad.r, k]), tensor(ad.b, [n, ad.r]), { scale: ad.scale });
      const f = fused.toFloat32Array();
      mine.forEach((row, j) => {
        for (let o = 0; o < n; o++) expect(Math.abs(y[row * n + o] - f[j * n + o])).toBeLessThan(1e-5 * (1 + Math.abs(f[j * n + o])));
      });
    }
  });

  it('the async form gives the same values', async () => {
    const random = rng(5);
    const [m, n, k] = [10, 16, 32];
    const adapters = asTensors(makeAdapters(random, [4, 8], n, k), n, k);
    const x = tensor(randomArray(random, m * k), [m, k]);
    const rows = [0, 1, 1, 0, -1, 0, 1, 1, 1, 0];
    expect((await ops.loraBatchForwardAsync(x, adapters, rows)).toFloat32Array()).toEqual(ops.loraBatchForward(x, adapters, rows).toFloat32Array());
  });

  it('refuses bad input with the field named', () => {
    const random = rng(9);
    const [m, n, k] = [4, 8, 16];
    const adapters = asTensors(makeAdapters(random, [4], n, k), n, k);
    const x = tensor(randomArray(random, m * k), [m, k]);
    const code = (fn: () => Tensor) => {
      try {
        fn();
        return 'no error';
      } catch (err) {
        return err instanceof PeftError ? `${err.code}: ${err.message}` : `not a PeftError: ${err}`;
      }
    };
    expect(code(() => ops.loraBatchForward(x, adapters, [0, 0, 0]))).toMatch(/^E_SHAPE: .*one adapter index per row of x \(4\)/);
    expect(code(() => ops.loraBatchForward(x, adapters, [0, 1, 0, 0]))).toMatch(/^E_RANGE: .*rowAdapter\[1\]/);
    expect(code(() => ops.loraBatchForward(x, adapters, [0, 0.5, 0, 0]))).toMatch(/^E_RANGE: .*rowAdapter\[1\]/);
    expect(code(() => ops.loraBatchForward(x, [{ ...adapters[0], scale: NaN }], [0, 0, 0, 0]))).toMatch(/adapters\[0\]\.scale/);
    expect(code(() => ops.loraBatchForward(x, [{ ...adapters[0], a: tensor(randomArray(random, 4 * 15), [4, 15]) }], [0, 0, 0, 0]))).toMatch(/^E_SHAPE: .*adapters\[0\]\.a/);
    expect(code(() => ops.loraBatchForward(x, [{ ...adapters[0], b: tensor(randomArray(random, 8 * 3), [8, 3]) }], [0, 0, 0, 0]))).toMatch(/^E_SHAPE: .*adapters\[0\]\.b/);
    expect(code(() => ops.loraBatchForward(x, adapters, [0, 0, 0, 0], { out: zeros([3, n]) }))).toMatch(/^E_SHAPE: .*options\.out of 4 rows/);
    expect(code(() => ops.loraBatchForward(x, [], [-1, -1, -1, -1]))).toMatch(/^E_ARGUMENT: .*options\.out/);
    expect(code(() => ops.loraBatchForward(x, [], [-1, -1, -1, -1], { out: zeros([m, n]) }))).toBe('no error');
  });
});
