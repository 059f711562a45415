// A BERT sequence classifier: a Hugging Face directory written in the test loads and gives the logits
// of a float64 reference written here from the published architecture (post-LayerNorm blocks,
// bidirectional attention over non-padding tokens, erf GELU, tanh pooler); every gradient matches
// finite differences; LoRA with task_type SEQ_CLS trains the classifier too and saves it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadModel, tensor } from '../../lib';
import { handleOf } from '../../lib/tensor';
import { checkGradients, checkModelGradients } from '../helpers/finite-diff';
import { randomArray, rng } from '../helpers/random';
import { f32Bytes, parseSafetensors, writeSafetensorsJs } from '../helpers/safetensors-js';

const H = 8, L = 2, HEADS = 2, V = 17, NPOS = 12, F = 16, C = 3;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function makeWeights(seed: number): Map<string, [number[], Float32Array]> {
  const random = rng(seed);
  const w = new Map<string, [number[], Float32Array]>();
  const add = (name: string, shape: number[], scale = 0.4, offset = 0) =>
    w.set(name, [shape, randomArray(random, shape.reduce((a, b) => a * b, 1), scale).map((v) => v + offset)]);
  const dense = (name: string, out: number, inF: number) => {
    add(`${name}.weight`, [out, inF]);
    add(`${name}.bias`, [out], 0.1);
  };
  const norm = (name: string) => {
    add(`${name}.weight`, [H], 0.2, 1);
    add(`${name}.bias`, [H], 0.1);
  };
  add('bert.embeddings.word_embeddings.weight', [V, H]);
  add('bert.embeddings.position_embeddings.weight', [NPOS, H], 0.2);
  add('bert.embeddings.token_type_embeddings.weight', [2, H], 0.2);
  norm('bert.embeddings.LayerNorm');
  for (let l = 0; l < L; l++) {
    const p = `bert.encoder.layer.${l}.`;
    for (const x of ['query', 'key', 'value']) dense(`${p}attention.self.${x}`, H, H);
    dense(`${p}attention.output.dense`, H, H);
    norm(`${p}attention.output.LayerNorm`);
    dense(`${p}intermediate.dense`, F, H);
    dense(`${p}output.dense`, H, F);
    norm(`${p}output.LayerNorm`);
  }
  dense('bert.pooler.dense', H, H);
  dense('classifier', C, H);
  return w;
}

function writeModelDir(weights: Map<string, [number[], Float32Array]>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bert-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    model_type: 'bert', architectures: ['BertForSequenceClassification'], hidden_size: H, num_hidden_layers: L,
    num_attention_heads: HEADS, intermediate_size: F, vocab_size: V, max_position_embeddings: NPOS, type_vocab_size: 2,
    layer_norm_eps: 1e-12, hidden_act: 'gelu', id2label: { 0: 'neg', 1: 'neu', 2: 'pos' },
  }));
  const entries = [...weights].map(([k, [shape, v]]) => [k, { dtype: 'F32', shape, bytes: f32Bytes([...v]) }] as [string, { dtype: string; shape: number[]; bytes: Uint8Array }]);
  entries.push(['bert.embeddings.position_ids', { dtype: 'F32', shape: [1, NPOS], bytes: f32Bytes(new Array(NPOS).fill(0)) }]);
  writeSafetensorsJs(path.join(dir, 'model.safetensors'), entries);
  return dir;
}

/** Float64 reference: class logits for one sequence with a padding mask. */
function reference(w: Map<string, [number[], Float32Array]>, ids: number[], valid: number[]): number[] {
  const get = (k: string) => Array.from(w.get(k)![1]);
  const D = H / HEADS, T = ids.length;
  const ln = (x: number[], m: string) => {
    const g = get(`${m}.weight`), b = get(`${m}.bias`);
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-12)) * g[i] + b[i]);
  };
  const dense = (x: number[], m: string) => {
    const W = get(`${m}.weight`), B = get(`${m}.bias`);
    return B.map((b, o) => b + x.reduce((a, v, i) => a + v * W[o * x.length + i], 0));
  };
  const erf = (x: number) => {  // Abramowitz–Stegun 7.1.26 is too coarse; use a series / continued fraction
    const t = Math.abs(x);
    if (t < 3) {
      let sum = t, term = t;
      for (let n = 1; n < 80; n++) {
        term *= (-t * t) / n;
        sum += term / (2 * n + 1);
      }
      return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
    }
    return Math.sign(x) * (1 - Math.exp(-t * t) / (t * Math.sqrt(Math.PI)) * (1 - 1 / (2 * t * t)));
  };
  const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
  const we = get('bert.embeddings.word_embeddings.weight'), pe = get('bert.embeddings.position_embeddings.weight');
  const te = get('bert.embeddings.token_type_embeddings.weight');
  let xs = ids.map((id, t) => ln(Array.from({ length: H }, (_, i) => we[id * H + i] + pe[t * H + i] + te[i]), 'bert.embeddings.LayerNorm'));
  for (let l = 0; l < L; l++) {
    const p = `bert.encoder.layer.${l}.`;
    const q = xs.map((x) => dense(x, `${p}attention.self.query`));
    const k = xs.map((x) => dense(x, `${p}attention.self.key`));
    const v = xs.map((x) => dense(x, `${p}attention.self.value`));
    const attn = xs.map((_, t) => {
      const out = new Array(H).fill(0);
      for (let h = 0; h < HEADS; h++) {
        const scores = Array.from({ length: T }, (_, s) => (valid[s] ? q[t].slice(h * D, h * D + D).reduce((a, qv, d) => a + qv * k[s][h * D + d], 0) / Math.sqrt(D) : -Infinity));
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s < T; s++) for (let d = 0; d < D; d++) out[h * D + d] += (e[s] / z) * v[s][h * D + d];
      }
      return out;
    });
    xs = xs.map((x, t) => ln(dense(attn[t], `${p}attention.output.dense`).map((o, i) => o + x[i]), `${p}attention.output.LayerNorm`));
    xs = xs.map((x) => ln(dense(dense(x, `${p}intermediate.dense`).map(gelu), `${p}output.dense`).map((o, i) => o + x[i]), `${p}output.LayerNorm`));
  }
  const pooled = dense(xs[0], 'bert.pooler.dense').map(Math.tanh);
  return dense(pooled, 'classifier');
}

describe('BERT sequence classifier', () => {
  const weights = makeWeights(41);
  const ids = [[2, 5, 7, 11, 3, 0], [2, 9, 16, 3, 0, 0]];
  const valid = [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]];

  it('loads from a Hugging Face directory and gives the float64 reference logits, padding masked', async () => {
    const model = await loadModel(writeModelDir(weights));
    expect(model.config).toMatchObject({ architecture: 'bert', numLabels: 3 });
    const logits = (await model.forward(ids, { attentionMask: tensor(valid, undefined, 'u8') })).toFloat32Array();
    const ref = ids.flatMap((row, b) => reference(weights, row, valid[b]));
    expect(Math.max(...ref.map((r, i) => Math.abs(r - logits[i])))).toBeLessThan(1e-5);
    await expect(model.generate([1, 2])).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });

  it('every gradient of the classification loss matches finite differences', async () => {
    const model = await loadModel(writeModelDir(weights));
    const checked = await checkModelGradients(model, ids, [[2, 0]]);
    expect(checked).toBeGreaterThan(3 * 30);
  });

  it("LoRA with task_type 'SEQ_CLS' trains the query/value adapters and the classifier, and saves the classifier", async () => {
    const model = await loadModel(writeModelDir(weights));
    const peft = getPeftModel(model, { peft_type: 'LORA', task_type: 'SEQ_CLS', r: 2, init_lora_weights: false }, { seed: 3 });
    const { names } = await checkGradients(peft, ids, [[1, 2]]);
    expect(names).toContain('classifier.weight');
    expect(names).toContain('bert.encoder.layer.1.attention.self.value.lora_B.default.weight');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bert-lora-'));
    dirs.push(dir);
    await peft.saveAdapter(dir);
    const keys = [...parseSafetensors(path.join(dir, 'adapter_model.safetensors')).tensors.keys()];
    expect(keys).toContain('base_model.model.classifier.weight');
    expect(keys).toContain('base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight');
  });

  it.each([['houlsby', 'sequential'], ['pfeiffer', 'parallel']] as const)(
    'bottleneck adapters (%s, %s) in the encoder blocks: gradients match finite differences',
    async (kind, mode) => {
      const model = await loadModel(writeModelDir(weights));
      const peft = getPeftModel(model, { peft_type: 'BOTTLENECK', task_type: 'SEQ_CLS', bottleneck_type: kind, mode, non_linearity: 'tanh', reduction_factor: 4, scaling: 2 }, { seed: 3 });
      // Move the zero-initialised up-projections so that every gradient is non-trivial.
      for (const [name, t] of Object.entries(peft.trainableParameters())) {
        peft.base.nativeModel.setParameterValue(name, handleOf(tensor(t.toFloat32Array().map((v, i) => v + 0.3 * Math.sin(i + name.length)), t.shape), name));
      }
      const { names } = await checkGradients(peft, ids, [[1, 2]]);
      expect(names.filter((n) => n.includes('_adapter.')).length).toBe(2 * (kind === 'houlsby' ? 2 : 1) * 4);
    },
  );

  it('in evaluation mode the loss runs no LoRA dropout: equal bit for bit to lora_dropout 0', async () => {
    const lora = { peft_type: 'LORA', task_type: 'SEQ_CLS', r: 2, init_lora_weights: false } as const;
    const noisy = getPeftModel(await loadModel(writeModelDir(weights)), { ...lora, lora_dropout: 0.5 }, { seed: 6 });
    const clean = getPeftModel(await loadModel(writeModelDir(weights)), { ...lora, lora_dropout: 0 }, { seed: 6 });
    const reference = (await clean.loss(ids, [[1, 2]])).loss;
    expect((await noisy.loss(ids, [[1, 2]])).loss).not.toBe(reference);
    noisy.eval();
    expect((await noisy.loss(ids, [[1, 2]])).loss).toBe(reference);
  });

  it('labels that are NaN, fractional or out of range are refused naming the row (not silently class 0)', async () => {
    const model = await loadModel(writeModelDir(weights));
    await expect(model.loss(ids, [[1, NaN]])).rejects.toMatchObject({ code: 'E_NONFINITE', message: 'Expected a class id for labels[1] but received the number NaN' });
    await expect(model.loss(ids, [[1.5, 0]])).rejects.toMatchObject({ code: 'E_RANGE', message: `Expected a class id in [0, ${C}) for labels[0] but received the number 1.5` });
    await expect(model.loss(ids, [[0, C]])).rejects.toMatchObject({ code: 'E_RANGE', message: expect.stringContaining('labels[1]') });
  });
});
