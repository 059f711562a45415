/** A small random Llama for gradient checks: hidden 8, 2 layers, 4 heads / 2 KV heads, vocab 11. */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { configFromHf, tensor, type LlamaConfig, type Tensor } from '../../lib';
import { Model } from '../../lib/models/model';
import { MODELS_DIR } from './models';
import { randomArray, rng } from './random';

export interface TinyLlamaOptions {
  seed?: number;
  tie?: boolean;
  bias?: boolean;
}

export function tinyLlama(options: TinyLlamaOptions = {}): { model: Model; config: LlamaConfig; weights: Map<string, Tensor> } {
  const config: LlamaConfig = {
    ...configFromHf(JSON.parse(fs.readFileSync(path.join(MODELS_DIR, 'stories260K-hf', 'config.json'), 'utf8'))),
    hiddenSize: 8,
    intermediateSize: 12,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    vocabSize: 11,
    tieWordEmbeddings: options.tie ?? true,
    attentionBias: options.bias ?? false,
  };
  const random = rng(options.seed ?? 1);
  const weights = new Map<string, Tensor>();
  const add = (name: string, shape: number[], scale = 0.5) =>
    weights.set(name, tensor(randomArray(random, shape.reduce((a, b) => a * b, 1), scale), shape));
  add('model.embed_tokens.weight', [11, 8]);
  add('model.norm.weight', [8]);
  if (!config.tieWordEmbeddings) add('lm_head.weight', [11, 8]);
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}.`;
    add(p + 'input_layernorm.weight', [8]);
    add(p + 'post_attention_layernorm.weight', [8]);
    add(p + 'self_attn.q_proj.weight', [16, 8]);
    add(p + 'self_attn.k_proj.weight', [8, 8]);
    add(p + 'self_attn.v_proj.weight', [8, 8]);
    add(p + 'self_attn.o_proj.weight', [8, 16]);
    if (config.attentionBias) {
      add(p + 'self_attn.q_proj.bias', [16]);
      add(p + 'self_attn.k_proj.bias', [8]);
      add(p + 'self_attn.v_proj.bias', [8]);
    }
    add(p + 'mlp.gate_proj.weight', [12, 8]);
    add(p + 'mlp.up_proj.weight', [12, 8]);
    add(p + 'mlp.down_proj.weight', [8, 12]);
  }
  return { model: new Model(config, weights), config, weights };
}

export const TINY_IDS = [
  [1, 5, 7, 2, 9, 3],
  [4, 4, 10, 0, 6, 8],
];
export const TINY_LABELS = [
  [1, 5, 7, 2, 9, 3],
  [4, 4, -100, 0, 6, 8],
];
