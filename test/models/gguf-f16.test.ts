/**
 * A GGUF with F16 weights (llama.cpp's usual export: matrices F16, norms F32) loads and runs. The
 * F16 file is made here from stories260K.gguf, rounding each weight to binary16 by its definition.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel } from '../../lib';
import { f16ToNumber, GGML, parseGguf, writeGguf, type MetaValue } from '../helpers/gguf';
import { STORIES_GGUF } from '../helpers/models';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-gguf-f16-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The binary16 nearest to x (ties to even), found by search over the decoded values. */
function toF16Bits(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  let lo = 0;
  let hi = 0x7c00; // +infinity
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (f16ToNumber(mid) <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - f16ToNumber(lo);
  const dHi = f16ToNumber(hi) - a;
  return sign | (dLo < dHi || (dLo === dHi && (lo & 1) === 0) ? lo : hi);
}

function f16File(): { file: string; rounded: Map<string, Float32Array> } {
  const bytes = new Uint8Array(fs.readFileSync(STORIES_GGUF));
  const parsed = parseGguf(bytes);
  const rounded = new Map<string, Float32Array>();
  const metadata: [string, MetaValue][] = [...parsed.metadata].map(([k, { type, value }]) => {
    if (type !== 'array') return [k, { type, value } as MetaValue];
    const items = value as unknown[];
    const elem = typeof items[0] === 'string' ? 'string' : k.endsWith('scores') ? 'f32' : 'i32';
    return [k, { type: 'array', elem, value: items }];
  });
  const tensors = parsed.tensors.map((t) => {
    expect(t.type).toBe(GGML.F32.id);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const start = bytes.byteOffset + parsed.dataStart + t.offset;
    const values = new Float32Array(bytes.buffer.slice(start, start + 4 * n));
    if (t.shape.length < 2) return { name: t.name, shape: t.shape, type: GGML.F32.id, data: new Uint8Array(values.buffer) };
    const bits = Uint16Array.from(values, toF16Bits);
    rounded.set(t.name, Float32Array.from(bits, f16ToNumber));
    return { name: t.name, shape: t.shape, type: GGML.F16.id, data: new Uint8Array(bits.buffer) };
  });
  const file = path.join(tmp, 'stories260K-f16.gguf');
  fs.writeFileSync(file, writeGguf({ version: parsed.version, metadata, tensors }).bytes);
  return { file, rounded };
}

describe('a GGUF with F16 weights', () => {
  it('loads as f32 holding the rounded weights, and gives nearly the logits of the F32 file', async () => {
    const { file, rounded } = f16File();
    const half = await loadModel(file);
    const full = await loadModel(STORIES_GGUF);
    expect(half.parameter('model.layers.2.mlp.down_proj.weight').dtype).toBe('f32');
    expect(half.parameter('model.layers.2.mlp.down_proj.weight').toFloat32Array()).toEqual(rounded.get('blk.2.ffn_down.weight'));
    expect(half.parameter('model.embed_tokens.weight').toFloat32Array()).toEqual(rounded.get('token_embd.weight'));
    const ids = [[1, 403, 407, 261, 378, 432, 383, 286]];
    const a = (await half.forward(ids)).toFloat32Array();
    const b = (await full.forward(ids)).toFloat32Array();
    let worst = 0;
    let scale = 0;
    b.forEach((v, i) => ((worst = Math.max(worst, Math.abs(a[i] - v))), (scale = Math.max(scale, Math.abs(v)))));
    expect(worst / scale).toBeLessThan(1e-2);
    expect(worst).toBeGreaterThan(0); // the rounding is really there
    expect((await half.generate('Once upon a time', { maxNewTokens: 8 })).text).toMatch(/^Once upon a time, there was a little/);
  });
});
