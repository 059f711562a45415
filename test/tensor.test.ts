import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

import { PeftError, runtime, tensor, zeros, Tensor } from '../lib';
import { randomArray, rng } from './helpers/random';
import { bf16ToNumber, roundToBf16 } from './helpers/reference';

/** Every finite f16 value by bit pattern, decoded from the IEEE 754 binary16 definition. */
function f16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Non-negative finite f16 values in increasing order, with their bit patterns. */
const candidates: { value: number; bits: number }[] = [];
for (let bits = 0; bits < 0x7c00; bits++) candidates.push({ value: f16Value(bits), bits });

/** Round-to-nearest-even f16 by searching the sorted table of representable values. */
function roundToF16(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const max = 65504;
  const ulpAtMax = 32;
  if (Math.abs(x) >= max + ulpAtMax / 2) return Math.sign(x) * Infinity; // halfway to 2^16 ties to "even" infinity
  const ax = Math.abs(x);
  let lo = 0;
  let hi = candidates.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (candidates[mid].value <= ax) lo = mid;
    else hi = mid;
  }
  const below = candidates[lo];
  const above = candidates[hi];
  const dBelow = ax - below.value;
  const dAbove = above.value - ax;
  const pick = dBelow < dAbove ? below : dAbove < dBelow ? above : (below.bits & 1) === 0 ? below : above;
  return Math.sign(x) * pick.value || (x < 0 || Object.is(x, -0) ? -0 : 0);
}

describe('tensor()', () => {
  it('creates tensors from nested arrays, inferring the shape', () => {
    const t = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('f32');
    expect(t.size).toBe(6);
    expect(Array.from(t.toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(t.toArray()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
  });

  it('creates tensors from TypedArrays with a shape, and picks the dtype from the array type', () => {
    expect(tensor(new Float32Array(6), [3, 2]).shape).toEqual([3, 2]);
    expect(tensor(new Int32Array([1, -2, 3])).dtype).toBe('i32');
    expect(tensor(new Uint8Array([1, 2, 255])).dtype).toBe('u8');
    expect(Array.from(tensor(new Int32Array([7, -2147483648])).toTypedArray())).toEqual([7, -2147483648]);
    expect(tensor(new Float64Array([0.1]), [1]).toFloat32Array()[0]).toBe(Math.fround(0.1));
    expect(tensor(new Float32Array([5]), []).shape).toEqual([]);
    expect(tensor(new Float32Array([5]), []).toArray()).toBe(5);
    expect(zeros([2, 0, 3]).size).toBe(0);
  });

  it('keeps i32 values exactly from number arrays (no float detour)', () => {
    const big = 2 ** 31 - 1;
    expect(Array.from(tensor([big, -big, 16777217], [3], 'i32').toTypedArray())).toEqual([big, -big, 16777217]);
  });

  it('rounds f32 to bf16 to nearest, ties to even, over random values and the special cases', () => {
    const random = rng(1);
    const values = Array.from(randomArray(random, 20000, 1000));
    // Exact ties: a bf16 value plus half its ulp, for both parities of the last kept bit.
    for (const base of [1, 1 + 2 ** -7, 3.5, -2.25]) values.push(base + Math.sign(base) * Math.abs(base) * 2 ** -9);
    values.push(0, -0, Infinity, -Infinity, 3.4028234663852886e38, -3.4028234663852886e38, 1e-40, -1e-42);
    const f32 = Float32Array.from(values);
    const bits = tensor(f32, [f32.length], 'bf16').toTypedArray() as Uint16Array;
    const wrong = [];
    for (let i = 0; i < f32.length; i++) {
      const expected = roundToBf16(f32[i]);
      if (!Object.is(bf16ToNumber(bits[i]), expected)) wrong.push({ input: f32[i], got: bf16ToNumber(bits[i]), expected });
    }
    expect(wrong).toEqual([]);
    const nan = tensor(new Float32Array([NaN]), [1], 'bf16');
    expect(Number.isNaN(nan.toFloat32Array()[0])).toBe(true);
  });

  it('rounds f32 to f16 to nearest, ties to even, including subnormals and overflow', () => {
    const random = rng(2);
    const values: number[] = [];
    for (let i = 0; i < 3000; i++) values.push((random() * 2 - 1) * 2 ** Math.floor(random() * 44 - 28));
    values.push(65504, 65519.99, 65520, -65520, 1e9, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -26, 0, -0);
    const f32 = Float32Array.from(values);
    const back = tensor(f32, [f32.length], 'f16').toFloat32Array();
    const wrong = [];
    for (let i = 0; i < f32.length; i++) {
      if (!Object.is(back[i], roundToF16(f32[i]))) wrong.push({ input: f32[i], got: back[i], expected: roundToF16(f32[i]) });
    }
    expect(wrong).toEqual([]);
  });

  it('decodes every f16 bit pattern exactly and encodes it back unchanged', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const t = tensor(all, [65536], 'f16');
    const values = t.toFloat32Array();
    const again = t.to('f32').to('f16').toTypedArray() as Uint16Array;
    const wrong = [];
    for (let bits = 0; bits < 65536; bits++) {
      const expected = f16Value(bits);
      if (Number.isNaN(expected)) {
        if (!Number.isNaN(values[bits]) || (again[bits] & 0x7c00) !== 0x7c00 || !(again[bits] & 0x3ff)) wrong.push({ bits, nan: true });
      } else if (!Object.is(values[bits], expected) || again[bits] !== bits) {
        wrong.push({ bits, decoded: values[bits], expected, reencoded: again[bits] });
      }
    }
    expect(wrong).toEqual([]);
  });

  it('converts between all dtypes (integers truncate and saturate)', () => {
    const t = tensor([-3.7, 0.5, 2.5, 300, 1e10]);
    expect(Array.from(t.to('i32').toTypedArray())).toEqual([-3, 0, 2, 300, 2147483647]);
    expect(Array.from(t.to('u8').toTypedArray())).toEqual([0, 0, 2, 255, 255]);
    expect(Array.from(t.to('bf16').to('f32').toFloat32Array())).toEqual([-3.703125, 0.5, 2.5, 300, 9999220736]);
    expect(Array.from(tensor(new Uint8Array([0, 200, 255])).to('f16').toFloat32Array())).toEqual([0, 200, 255]);
  });
});

describe('tensor memory', () => {
  it('reports native memory to V8 and returns it on dispose()', () => {
    // The counter is process-wide: a garbage collection that a large allocation triggers can free
    // earlier tests' tensors meanwhile, so each step is measured by itself and may come out a
    // little lower, never higher.
    const MiB = 1024 * 1024;
    const step = (fn: () => void) => {
      const before = runtime.externalMemory();
      fn();
      return runtime.externalMemory() - before;
    };
    let big = zeros([1]);
    let converted = zeros([1]);
    const allocated = step(() => (big = zeros([16, 1024, 1024]))); // 64 MiB
    expect(allocated).toBeLessThanOrEqual(64 * MiB);
    expect(allocated).toBeGreaterThan(56 * MiB);
    const more = step(() => (converted = big.to('bf16'))); // 32 MiB
    expect(more).toBeLessThanOrEqual(32 * MiB);
    expect(more).toBeGreaterThan(24 * MiB);
    expect(step(() => big.dispose())).toBeLessThanOrEqual(-64 * MiB);
    expect(step(() => converted.dispose())).toBeLessThanOrEqual(-32 * MiB);
    expect(big.disposed).toBe(true);
    big.dispose(); // idempotent
    expect(() => big.toFloat32Array()).toThrow(PeftError);
    try {
      big.toFloat32Array();
    } catch (e) {
      expect((e as PeftError).code).toBe('E_DISPOSED');
    }
  });

  it('supports `using` style disposal through Symbol.dispose', () => {
    const t = zeros([4]);
    const dispose = (t as unknown as Record<symbol, () => void>)[(Symbol as { dispose?: symbol }).dispose ?? Symbol.for('nodejs.dispose')];
    dispose.call(t);
    expect(t.disposed).toBe(true);
  });

  it('is freed by the garbage collector when not disposed (resident memory stays flat)', () => {
    // A child process allocates 200 x 32 MiB tensors without disposing them. Native finalizers
    // run after the current task, so the loop yields to the event loop as real code does.
    const script = `
      const { zeros } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
      (async () => {
        for (let i = 0; i < 200; i++) {
          zeros([8, 1024, 1024]);
          await new Promise((resolve) => setImmediate(resolve));
        }
        process.stdout.write(String(process.memoryUsage().rss));
      })();
    `;
    const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(out.status).toBe(0);
    const rssMiB = Number(out.stdout) / 1024 / 1024;
    // 200 x 32 MiB = 6.4 GiB if nothing were freed.
    expect(rssMiB).toBeLessThan(1024);
  });

  it('is an instance of the exported Tensor class', () => {
    expect(tensor([1])).toBeInstanceOf(Tensor);
  });
});
