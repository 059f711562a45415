// ops.scale and ops.copy: in place on the tensors' own storage, against a Float32Array reference
// (Math.fround of the product: one f32 rounding), sizes past one work item (2^16 values), NaN and
// infinities copied bit for bit, and bad input refused.
import { ops, tensor, zeros } from '../../lib';
import { randomArray, rng } from '../helpers/random';

describe('ops.scale', () => {
  it.each([1, 7, 65_536, 200_003])('scales %i values in place, as an f32 multiply rounds them', async (n) => {
    const values = randomArray(rng(n), n, 3);
    const a = tensor(values.slice(), [n]), b = tensor(values.slice(0, Math.min(n, 5)), [Math.min(n, 5)]);
    await ops.scaleAsync([a, b], 0.3);
    const expected = values.map((v) => Math.fround(v * Math.fround(0.3)));
    expect(Array.from(a.toFloat32Array())).toEqual(Array.from(expected));
    expect(Array.from(b.toFloat32Array())).toEqual(Array.from(expected.slice(0, Math.min(n, 5))));
    ops.scale([a], -2);  // any finite factor, sync too
    expect(a.toFloat32Array()[0]).toBe(Math.fround(expected[0] * -2));
  });

  it('refuses a repeated tensor, a non-f32 tensor and a non-finite factor', () => {
    const a = zeros([3]);
    expect(() => ops.scale([a, a], 2)).toThrow(expect.objectContaining({ code: 'E_ARGUMENT' }));
    expect(() => ops.scale([tensor([1, 2], [2], 'bf16')], 2)).toThrow(expect.objectContaining({ code: 'E_DTYPE' }));
    expect(() => ops.scale([a], NaN)).toThrow(expect.objectContaining({ code: 'E_ARGUMENT' }));
  });
});

describe('ops.copy', () => {
  it.each([1, 65_537, 300_000])('copies %i values bit for bit into the target\'s own storage', async (n) => {
    const source = randomArray(rng(n + 1), n, 2);
    source[0] = NaN;
    if (n > 2) source[n - 1] = -Infinity;
    const target = tensor(new Float32Array(n).fill(Infinity), [n]);
    const before = target.toFloat32Array();
    await ops.copyAsync(target, tensor(source, [n]));
    const after = target.toFloat32Array();
    expect(new Uint32Array(after.buffer, after.byteOffset, n)).toEqual(new Uint32Array(source.buffer, source.byteOffset, n));
    expect(before.length).toBe(n);
  });

  it('takes any shape with as many values, and refuses other counts, dtypes and the same storage', () => {
    const target = zeros([2, 3]);
    ops.copy(target, tensor([1, 2, 3, 4, 5, 6], [6]));
    expect(Array.from(target.toFloat32Array())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => ops.copy(target, zeros([5]))).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => ops.copy(target, tensor([1, 2, 3, 4, 5, 6], [6], 'bf16'))).toThrow(expect.objectContaining({ code: 'E_DTYPE' }));
    expect(() => ops.copy(target, target)).toThrow(expect.objectContaining({ code: 'E_ARGUMENT' }));
  });
});
