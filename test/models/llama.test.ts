import * as fs from 'node:fs';
import * as path from 'node:path';

import { configFromHf, loadModel, ropeInverseFrequencies, tensor, type LlamaConfig, type Model } from '../../lib';
import { Model as ModelClass } from '../../lib/models/model';
import { llamaReferenceLogits } from '../helpers/llama-reference';
import { randomArray, rng } from '../helpers/random';
import { MODELS_DIR } from '../helpers/models';

const MODELS = MODELS_DIR;
const HF_DIR = path.join(MODELS, 'stories260K-hf');
const GGUF = path.join(MODELS, 'stories260K', 'stories260K.gguf');

function maxRelative(a: Float32Array, b: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst / scale;
}

describe('stories260K', () => {
  let hf: Model;
  let gguf: Model;
  beforeAll(async () => {
    hf = await loadModel(HF_DIR);
    gguf = await loadModel(GGUF, { tokenizer: HF_DIR });
  });

  const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421];

  it('the Hugging Face directory gives the float64 reference logits', async () => {
    const logits = await hf.forward([ids]);
    expect(logits.shape).toEqual([1, ids.length, 512]);
    const weights = (name: string) => hf.parameter(name).toFloat32Array();
    const ref = llamaReferenceLogits(hf.config, weights, ids, ropeInverseFrequencies(hf.config));
    const flat = Float64Array.from(ref.flatMap((row) => Array.from(row)));
    expect(maxRelative(logits.toFloat32Array(), flat)).toBeLessThan(1e-5);
  });

  it('the GGUF file gives the same logits as the Hugging Face weights', async () => {
    // The GGUF stores eps as f32 and carries its own copy of the (tied) head as output.weight.
    expect(gguf.config).toMatchObject({
      ...hf.config,
      maxPositionEmbeddings: gguf.config.maxPositionEmbeddings,
      rmsNormEps: Math.fround(hf.config.rmsNormEps),
      tieWordEmbeddings: false,
    });
    const a = (await hf.forward([ids, ids.slice().reverse()])).toFloat32Array();
    const b = (await gguf.forward([ids, ids.slice().reverse()])).toFloat32Array();
    expect(maxRelative(b, a)).toBeLessThan(1e-5);
  });

  it('continues "Once upon a time" with the same story from both files', async () => {
    const fromHf = await hf.generate('Once upon a time', { maxNewTokens: 24 });
    const fromGguf = await gguf.generate('Once upon a time', { maxNewTokens: 24 });
    expect(fromGguf.tokens).toEqual(fromHf.tokens);
    expect(fromHf.text).toMatch(/^Once upon a time, there was a little girl named Lily\./);
  });
});

describe('gradients of a small random Llama', () => {
  for (const variant of [
    { name: 'tied head', tie: true, bias: false },
    { name: 'separate head, q/k/v biases (Qwen2-style)', tie: false, bias: true },
  ]) {
    it(`match central finite differences: ${variant.name}`, async () => {
      const config: LlamaConfig = {
        ...configFromHf(JSON.parse(fs.readFileSync(path.join(HF_DIR, 'config.json'), 'utf8'))),
        hiddenSize: 8,
        intermediateSize: 12,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 4,
        vocabSize: 11,
        tieWordEmbeddings: variant.tie,
        attentionBias: variant.bias,
      };
      const random = rng(variant.tie ? 1 : 2);
      const weights = new Map<string, ReturnType<typeof tensor>>();
      const add = (name: string, shape: number[], scale = 0.5) =>
        weights.set(name, tensor(randomArray(random, shape.reduce((a, b) => a * b, 1), scale), shape));
      add('model.embed_tokens.weight', [11, 8]);
      add('model.norm.weight', [8]);
      if (!variant.tie) add('lm_head.weight', [11, 8]);
      for (let l = 0; l < 2; l++) {
        const p = `model.layers.${l}.`;
        add(p + 'input_layernorm.weight', [8]);
        add(p + 'post_attention_layernorm.weight', [8]);
        add(p + 'self_attn.q_proj.weight', [16, 8]);
        add(p + 'self_attn.k_proj.weight', [8, 8]);
        add(p + 'self_attn.v_proj.weight', [8, 8]);
        add(p + 'self_attn.o_proj.weight', [8, 16]);
        if (variant.bias) {
          add(p + 'self_attn.q_proj.bias', [16]);
          add(p + 'self_attn.k_proj.bias', [8]);
          add(p + 'self_attn.v_proj.bias', [8]);
        }
        add(p + 'mlp.gate_proj.weight', [12, 8]);
        add(p + 'mlp.up_proj.weight', [12, 8]);
        add(p + 'mlp.down_proj.weight', [8, 12]);
      }
      const model = new ModelClass(config, weights);
      const ids = [
        [1, 5, 7, 2, 9, 3],
        [4, 4, 10, 0, 6, 8],
      ];
      const labels = [
        [1, 5, 7, 2, 9, 3],
        [4, 4, -100, 0, 6, 8],
      ];
      const { loss, grads } = await model.loss(ids, labels);
      expect(Object.keys(grads).sort()).toEqual(model.parameterNames().sort());
      const h = 1e-2;
      for (const name of model.parameterNames()) {
        const param = model.parameter(name);
        const values = param.toFloat32Array();
        const analytic = grads[name].toFloat32Array();
        // A few elements of every parameter, perturbed in place (the model reads the same memory).
        for (const i of [0, Math.floor(values.length / 2), values.length - 1]) {
          const original = values[i];
          const at = (v: number) => {
            values[i] = v;
            return tensor(values, param.shape);
          };
          const lossWith = async (v: number) => {
            const m = new ModelClass(config, new Map([...weights, [name, at(v)]]));
            return (await m.loss(ids, labels)).loss;
          };
          const numeric = ((await lossWith(original + h)) - (await lossWith(original - h))) / (2 * h);
          values[i] = original;
          expect([name, i, Math.abs(numeric - analytic[i]) < 2e-3 + 0.02 * Math.abs(numeric)]).toEqual([name, i, true]);
        }
      }
      expect(loss).toBeGreaterThan(0);
    });
  }
});

describe('bad input to a model', () => {
  it('ids outside the vocabulary and sequences longer than the context are refused', async () => {
    const model = await loadModel(HF_DIR);
    await expect(model.forward([[1, 2, 512]])).rejects.toMatchObject({ code: 'E_RANGE', message: expect.stringContaining('512') });
    await expect(model.loss([[1, -3, 4]])).rejects.toMatchObject({ code: 'E_RANGE' });
    const long = Array.from({ length: model.config.maxPositionEmbeddings + 1 }, (_, i) => i % 500);
    await expect(model.forward([long])).rejects.toMatchObject({ code: 'E_RANGE', message: expect.stringContaining('context') });
  });
});

describe('loading in bf16, and model.info()', () => {
  it("dtype 'bf16' holds the matrices in 2 bytes per parameter and gives logits close to f32", async () => {
    const f32 = await loadModel(HF_DIR);
    const bf16 = await loadModel(HF_DIR, { dtype: 'bf16' });
    const a = f32.info(), b = bf16.info();
    expect(a.parameters).toBe(b.parameters);
    expect(a.bytes).toBe(4 * a.parameters);
    // Matrices in bf16, the 64-wide norms in f32.
    const norms = 2 * 5 * 64 + 64;
    expect(b.byDtype.f32).toEqual({ parameters: norms, bytes: 4 * norms });
    expect(b.byDtype.bf16).toEqual({ parameters: a.parameters - norms, bytes: 2 * (a.parameters - norms) });
    const ids = [[1, 403, 407, 261, 378, 432, 383, 286]];
    const x = (await f32.forward(ids)).toFloat32Array(), y = (await bf16.forward(ids)).toFloat32Array();
    expect(maxRelative(y, x)).toBeLessThan(0.05);
    expect(maxRelative(y, x)).toBeGreaterThan(0);
    await expect(loadModel(HF_DIR, { dtype: 'f16' as 'f32' })).rejects.toMatchObject({ code: 'E_DTYPE' });
  });
});
