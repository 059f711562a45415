// The fused training call (trainLoss: forward, loss and backward without the whole logits; the head
// and the cross-entropy run in blocks of rows) against the two-call path it replaces (forward with
// train = true, then lossBackward over the full logits): same loss and same gradients, with the
// block boundaries inside a sequence, padding, ignored labels, a frozen base and nothing training.
import { configFromHf, getPeftModel, tensor, Tensor, type LlamaConfig } from '../../lib';
import { handleOf } from '../../lib/tensor';
import { Model } from '../../lib/models/model';
import { randomArray, rng } from '../helpers/random';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MODELS_DIR } from '../helpers/models';

// A vocabulary large enough that one head block (2^24 logits) holds fewer rows than the batch.
const VOCAB = 40000;
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

  it('refuses labels of the wrong shape with E_SHAPE', () => {
    const model = wideVocabLlama(true);
    const { ids } = batch(5);
    expect(() => model.nativeModel.trainLoss(handleOf(ids, 't'), null, handleOf(tensor(new Int32Array(B * (T - 1)), [B, T - 1], 'i32'), 'labels'))).toThrow(expect.objectContaining({ code: 'E_SHAPE' }));
  });
});
