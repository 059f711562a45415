/**
 * Independent references for the kernel tests, written from the definitions in float64 JS
 * (no code shared with the native kernels).
 */

/** C = alpha · op(A)·op(B) (+ C0) in float64. a stored [M,K] or [K,M]; b stored [K,N] or [N,K]. */
export function referenceMatmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  alpha = 1,
  c0?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(m * n);
  const aCols = transA ? m : k;
  const bCols = transB ? k : n;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * aCols + i] : a[i * aCols + p];
        const bv = transB ? b[j * bCols + p] : b[p * bCols + j];
        sum += av * bv;
      }
      out[i * n + j] = alpha * sum + (c0 ? c0[i * n + j] : 0);
    }
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 value of a bf16 bit pattern. */
export function bf16ToNumber(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

/**
 * bf16 rounding by value: the nearest of the two bf16 neighbours of x, ties to the even pattern.
 * (Works on values, not on the bit trick the kernel uses.)
 */
export function roundToBf16(x: number): number {
  f32[0] = x;
  if (Number.isNaN(f32[0])) return NaN;
  const truncated = u32[0] & 0xffff0000;
  u32[0] = truncated;
  const down = f32[0];
  if (down === x || !Number.isFinite(down)) return down;
  u32[0] = truncated + 0x10000;
  // Past the largest finite bf16 the next pattern is infinity; measure distance to 2^128 instead.
  const up = Number.isFinite(f32[0]) ? f32[0] : Math.sign(x) * 2 ** 128;
  // down and up bracket x (by magnitude); pick the nearer, ties to an even low bit.
  const dDown = Math.abs(x - down);
  const dUp = Math.abs(up - x);
  if (dDown < dUp) return down;
  const upValue = Number.isFinite(up) && Math.abs(up) < 2 ** 128 ? up : Math.sign(x) * Infinity;
  if (dUp < dDown) return upValue;
  return ((truncated >>> 16) & 1) === 0 ? down : upValue;
}

/** Largest |a - b| / (|b| + floor) over two arrays. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 1): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]) / (Math.abs(expected[i]) + floor);
    if (!(e <= worst)) worst = e; // NaN propagates as worst
  }
  return worst;
}
