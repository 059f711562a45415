/**
 * The forward benchmark's model maker (scripts/bench/make-smollm-gguf.js), at a tiny size: the file
 * reads back as GGUF with the shapes asked for, loads as a model with its byte-level vocabulary, and
 * its F16 rounding is IEEE binary16's (checked against the format's definition).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, readGguf } from '../../lib';
import { f16ToNumber } from '../helpers/gguf';
import { rng } from '../helpers/random';

const maker = require('../../scripts/bench/make-smollm-gguf.js') as {
  makeSmollmGguf(o: { out: string; dtype?: string; shapes?: Record<string, number> }): string;
  f16Bits(bits: number): number;
  SMOLLM_135M: Record<string, number>;
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-bench-model-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const TINY = { hidden: 48, layers: 2, heads: 3, kvHeads: 1, headDim: 16, ffn: 64, vocab: 600, context: 256 };

describe('make-smollm-gguf', () => {
  it('has SmolLM-135M\'s shapes by default', () => {
    expect(maker.SMOLLM_135M).toEqual({ hidden: 576, layers: 30, heads: 9, kvHeads: 3, headDim: 64, ffn: 1536, vocab: 49152, context: 2048 });
  });

  it.each(['F32', 'F16'])('writes a %s model that loads, tokenizes and runs', async (dtype) => {
    const file = maker.makeSmollmGguf({ out: path.join(tmp, `tiny-${dtype}.gguf`), dtype, shapes: TINY });
    const g = readGguf(file);
    expect(g.tensorInfos.length).toBe(2 + 9 * TINY.layers);
    expect(g.tensorInfos.find((t) => t.name === 'blk.1.attn_k.weight')).toMatchObject({ shape: [16, 48], type: dtype });
    expect(g.tensorInfos.find((t) => t.name === 'blk.1.ffn_norm.weight')).toMatchObject({ shape: [48], type: 'F32' });
    expect((g.metadata['tokenizer.ggml.tokens'] as string[]).length).toBe(TINY.vocab);
    g.dispose();
    const model = await loadModel(file);
    expect(model.config).toMatchObject({ hiddenSize: 48, numLayers: 2, numHeads: 3, numKvHeads: 1, headDim: 16, vocabSize: 600, tieWordEmbeddings: true });
    const text = 'the quick brown fox, 42 times!\n';
    const ids = model.tokenizer!.encode(text);
    expect(model.tokenizer!.decode(ids)).toBe(text);
    expect(ids.length).toBeLessThan([...text].length); // the merges join letters
    const logits = await model.forward([ids]);
    expect(logits.shape).toEqual([1, ids.length, 600]);
    expect(logits.toFloat32Array().every(Number.isFinite)).toBe(true);
  });

  it('rounds float32 to the nearest binary16, ties to even', () => {
    const random = rng(5);
    const f32 = new Float32Array(1);
    const bits = new Uint32Array(f32.buffer);
    const values = [0, -0, 1, -2, 65504, 65520, 1e6, 6e-8, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity];
    for (let i = 0; i < 20000; i++) values.push((random() * 2 - 1) * 2 ** Math.floor(random() * 40 - 28));
    const wrong: number[] = [];
    for (const v of values) {
      f32[0] = v;
      const x = f32[0];
      const h = maker.f16Bits(bits[0]);
      const got = f16ToNumber(h);
      if (Math.abs(x) >= 65520) {
        if (got !== (x > 0 ? Infinity : -Infinity)) wrong.push(x); // IEEE: from max + half an ulp on, overflow
        continue;
      }
      // No binary16 is nearer; at a tie, the even one.
      const neighbours = [h - 1, h + 1].filter((n) => (n & 0x7fff) <= 0x7c00 && (n & 0x8000) === (h & 0x8000)).map(f16ToNumber);
      for (const n of neighbours) {
        const dGot = Math.abs(got - x);
        const dN = Math.abs(n - x);
        if (dGot > dN || (dGot === dN && (h & 1) === 1)) wrong.push(x);
      }
    }
    expect(wrong).toEqual([]);
    f32[0] = NaN;
    expect(Number.isNaN(f16ToNumber(maker.f16Bits(bits[0])))).toBe(true);
  });
});
