// The fused training call (trainLoss: forward, loss and backward without the whole logits; the head
// and the cross-entropy run in blocks of rows) against the two-call path it replaces (forward with
// train = true, then lossBackward over the full logits): same loss and same gradients, with the
// block boundaries inside a sequence, padding, ignored labels, a frozen base and nothing training,
// for Llama (tied and separate heads) and GPT-2.
import * as os from 'node:os';

import { configFromHf, getPeftModel, loadModel, tensor, Tensor, writeSafetensors, type LlamaConfig } from '../../lib';
import { handleOf } from '../../lib/tensor';
import { Model } from '../../lib/models/model';
import { randomArray, rng } from '../helpers/random';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MODELS_DIR } from '../helpers/models';
import { gpt2Weights } from '../helpers/tiny-gpt2';

// A vocabulary large enough that one head block (2^24 logits) holds fewer rows than the batch, and a
// multiple of 256 words, so the blocks' logits rows are padded (a row of 1 KiB multiples is not kept).
const VOCAB = 40960;
const B = 2, T = 300;

function wideVocabLlama(tie: boolean): Model {
  const config: LlamaConfig = {
    ...configFromHf(JSON.parse(fs.readFileSync(path.join(MODELS_DIR, 'stories260K-hf', 'config.json'), 'utf8'))),
    hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 2 * 2,
    vocabSize: VOCAB, maxPositionEmbeddings: 512, tieWordEmbeddings: tie, attentionBias: false,
  };
  const random = rng(11);
  const weights = new Map<string, Tensor>();
  const add = (name: string, shape: number[], scale = 0.5) => weights.set(name, tensor(randomArray(random, shape.reduce((a, b) => a * b, 1), scale), shape));
  add('model.embed_tokens.weight', [VOCAB, 8]);
  add('model.norm.weight', [8]);
  if (!tie) add('lm_head.weight', [VOCAB, 8]);
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}.`;
    add(p + 'input_layernorm.weight', [8]);
    add(p + 'post_attention_layernorm.weight', [8]);
    add(p + 'self_attn.q_proj.weight', [16, 8]);
    add(p + 'self_attn.k_proj.weight', [8, 8]);
    add(p + 'self_attn.v_proj.weight', [8, 8]);
    add(p + 'self_attn.o_proj.weight', [8, 16]);
    add(p + 'mlp.gate_proj.weight', [12, 8]);
    add(p + 'mlp.up_proj.weight', [12, 8]);
    add(p + 'mlp.down_proj.weight', [8, 12]);
  }
  return new Model(config, weights);
}

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** GPT-2 with the same wide vocabulary: hidden 8, 2 layers, 2 heads, tied head, written as a Hugging Face folder. */
async function wideVocabGpt2(): Promise<Model> {
  const H = 8, INNER = 32, NPOS = 512;
  const tensors: Record<string, Tensor> = {};
  for (const [name, [shape, values]] of gpt2Weights(rng(12), { hidden: H, layers: 2, inner: INNER, vocab: VOCAB, positions: NPOS })) {
    tensors[name] = tensor(values, shape);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-train-loss-gpt2-'));
  dirs.push(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], n_embd: H, n_layer: 2, n_head: 2, n_inner: INNER,
    vocab_size: VOCAB, n_positions: NPOS, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new',
  }));
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return loadModel(dir);
}

function batch(seed: number): { ids: Tensor; labels: Tensor; mask: Tensor } {
  const r = rng(seed);
  const ids = new Int32Array(B * T), labels = new Int32Array(B * T), mask = new Uint8Array(B * T).fill(1);
  for (let i = 0; i < B * T; i++) {
    ids[i] = Math.floor(r() * VOCAB);
    labels[i] = r() < 0.1 ? -100 : ids[i];
  }
  for (let t = T - 40; t < T; t++) mask[T + t] = 0;  // the second row ends in padding
  return { ids: tensor(ids, [B, T], 'i32'), labels: tensor(labels, [B, T], 'i32'), mask: tensor(mask, [B, T], 'u8') };
}

type Result = { loss: number; grads: Map<string, Float32Array> };
const collect = (r: { loss: number; grads: Record<string, unknown> }): Result => ({
  loss: r.loss,
  grads: new Map(Object.entries(r.grads).map(([k, v]) => [k, new Tensor(v as never).toFloat32Array().slice()])),
});

function twoCalls(model: Model, ids: Tensor, labels: Tensor, mask: Tensor | null): Result {
  const n = model.nativeModel;
  const logits = n.forward(handleOf(ids, 't'), mask ? handleOf(mask, 'mask') : null, true);
  const r = collect(n.lossBackward(logits, handleOf(labels, 't'), false));
  logits.dispose();
  return r;
}

function fused(model: Model, ids: Tensor, labels: Tensor, mask: Tensor | null): Result {
  return collect(model.nativeModel.trainLoss(handleOf(ids, 't'), mask ? handleOf(mask, 'mask') : null, handleOf(labels, 't'), false));
}

function expectSame(a: Result, b: Result): void {
  expect(Math.abs(a.loss - b.loss)).toBeLessThanOrEqual(1e-6 * Math.abs(b.loss));
  expect([...a.grads.keys()].sort()).toEqual([...b.grads.keys()].sort());
  for (const [name, g] of b.grads) {
    const h = a.grads.get(name)!;
    let worst = 0, scale = 0;
    for (let i = 0; i < g.length; i++) {
      worst = Math.max(worst, Math.abs(g[i] - h[i]));
      scale = Math.max(scale, Math.abs(g[i]));
    }
    if (worst > 2e-5 * scale + 1e-12) throw new Error(`${name}: gradients differ by ${worst} (largest ${scale})`);
  }
}

describe('trainLoss (the head and the loss in row blocks)', () => {
  it.each([true, false])('full fine-tuning (tied head %s): the loss and every gradient match forward + lossBackward', (tie) => {
    const model = wideVocabLlama(tie);
    const { ids, labels, mask } = batch(1);
    const reference = twoCalls(model, ids, labels, mask);
    expect(reference.grads.size).toBe(model.parameterNames().length);
    expectSame(fused(model, ids, labels, mask), reference);
    expectSame(fused(model, ids, labels, null), twoCalls(model, ids, labels, null));
  });

  it('LoRA on a frozen base: only the adapter gradients, equal to the two-call path', () => {
    const peft = getPeftModel(wideVocabLlama(true), { peft_type: 'LORA', r: 2, target_modules: ['q_proj', 'down_proj'], init_lora_weights: false }, { seed: 2 });
    const { ids, labels, mask } = batch(2);
    const reference = twoCalls(peft.base, ids, labels, mask);
    expect([...reference.grads.keys()].every((k) => k.includes('lora_'))).toBe(true);
    expectSame(fused(peft.base, ids, labels, mask), reference);
  });

  it('nothing trains: the loss alone, the same as the two-call path', () => {
    const model = wideVocabLlama(false);
    for (const name of model.parameterNames()) model.nativeModel.setTrainable(name, false);
    const { ids, labels } = batch(3);
    const a = fused(model, ids, labels, null), b = twoCalls(model, ids, labels, null);
    expect(a.grads.size).toBe(0);
    expect(Math.abs(a.loss - b.loss)).toBeLessThanOrEqual(1e-6 * b.loss);
  });

  it('every label ignored: loss 0 and zero gradients', () => {
    const model = wideVocabLlama(true);
    const { ids } = batch(4);
    const r = fused(model, ids, tensor(new Int32Array(B * T).fill(-100), [B, T], 'i32'), null);
    expect(r.loss).toBe(0);
    for (const g of r.grads.values()) expect(g.every((v) => v === 0)).toBe(true);
  });

  it('GPT-2, full fine-tuning: the loss and every gradient match forward + lossBackward', async () => {
    const model = await wideVocabGpt2();
    const { ids, labels, mask } = batch(6);
    const reference = twoCalls(model, ids, labels, mask);
    expect(reference.grads.size).toBe(model.parameterNames().length);
    expectSame(fused(model, ids, labels, mask), reference);
    expectSame(fused(model, ids, labels, null), twoCalls(model, ids, labels, null));
  });

  it('GPT-2, LoRA on a frozen base and nothing training: equal to the two-call path', async () => {
    const peft = getPeftModel(await wideVocabGpt2(), { peft_type: 'LORA', r: 2, target_modules: ['c_attn', 'c_fc'], init_lora_weights: false }, { seed: 3 });
    const { ids, labels, mask } = batch(7);
    const reference = twoCalls(peft.base, ids, labels, mask);
    expect(reference.grads.size).toBeGreaterThan(0);
    expect([...reference.grads.keys()].every((k) => k.includes('lora_'))).toBe(true);
    expectSame(fused(peft.base, ids, labels, mask), reference);
    for (const name of peft.base.nativeModel.parameters().map((p) => p.name)) peft.base.nativeModel.setTrainable(name, false);
    const a = fused(peft.base, ids, labels, null), b = twoCalls(peft.base, ids, labels, null);
    expect(a.grads.size).toBe(0);
    expect(Math.abs(a.loss - b.loss)).toBeLessThanOrEqual(1e-6 * b.loss);
  });

  it('refuses labels of the wrong shape with E_SHAPE', () => {
    const model = wideVocabLlama(true);
    const { ids } = batch(5);
    expect(() => model.nativeModel.trainLoss(handleOf(ids, 't'), null, handleOf(tensor(new Int32Array(B * (T - 1)), [B, T - 1], 'i32'), 'labels'))).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
  });
});
