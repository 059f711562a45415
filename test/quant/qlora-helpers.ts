/**
 * Small 4-bit Llamas for the QLoRA tests, each with its independent reference: the same model
 * with every 4-bit weight dequantized by the facade (dequantize) and held as a plain dense weight.
 */
import { dequantize, quantize, tensor, type QuantizedTensor, type QuantType, type Tensor, type LlamaConfig } from '../../lib';
import { Model } from '../../lib/models/model';
import { randomArray, rng } from '../helpers/random';
import { tinyLlama, type TinyLlamaOptions } from '../helpers/tiny-llama';

export const BLOCK_LINEAR = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

export interface QuantOptions {
  quantType?: QuantType;
  blocksize?: number;
  doubleQuant?: boolean;
  computeDtype?: 'f32' | 'bf16';
}

export interface QuantPair {
  /** The model with 4-bit block linears. */
  quantized: Model;
  /** The same weights, 4-bit ones dequantized (rounded to bf16 for a bf16 compute dtype), dense f32. */
  reference: Model;
  config: LlamaConfig;
  weights: Map<string, QuantizedTensor>;
}

/** Quantizes the block linears of `weights` and builds both models. */
export function quantPair(config: LlamaConfig, weights: Map<string, Tensor>, o: QuantOptions = {}): QuantPair {
  const dense = new Map<string, Tensor>();
  const quantized = new Map<string, QuantizedTensor>();
  const reference = new Map<string, Tensor>();
  for (const [name, t] of weights) {
    if (!BLOCK_LINEAR.test(name)) {
      dense.set(name, t);
      reference.set(name, tensor(t.toFloat32Array(), t.shape));
      continue;
    }
    const q = quantize(t, { quant_type: o.quantType ?? 'nf4', blocksize: o.blocksize ?? 32, double_quant: o.doubleQuant ?? false });
    quantized.set(name, q);
    const values = o.computeDtype === 'bf16' ? dequantize(q, { dtype: 'bf16' }).toFloat32Array() : dequantize(q).toFloat32Array();
    reference.set(name, tensor(values, t.shape));
  }
  return {
    quantized: new Model(config, dense, undefined, undefined, { weights: quantized, computeDtype: o.computeDtype ?? 'f32' }),
    reference: new Model(config, reference),
    config,
    weights: quantized,
  };
}

export function tinyQuantPair(tiny: TinyLlamaOptions = {}, o: QuantOptions = {}): QuantPair {
  const { config, weights } = tinyLlama(tiny);
  return quantPair(config, weights, o);
}

/**
 * A one-layer Llama whose linear layers are large enough for several dequantized panels (the 4-bit
 * products dequantize at most 2^18 floats at a time) and whose blocks straddle rows: hidden 40,
 * FFN 6600.
 */
export function wideQuantPair(o: QuantOptions = {}): QuantPair {
  const base = tinyLlama({ tie: false }).config;
  const config: LlamaConfig = { ...base, hiddenSize: 40, intermediateSize: 6600, numLayers: 1, numHeads: 4, numKvHeads: 2, headDim: 10, vocabSize: 11 };
  const random = rng(11);
  const weights = new Map<string, Tensor>();
  const add = (name: string, shape: number[], scale: number) =>
    weights.set(name, tensor(randomArray(random, shape[0] * (shape[1] ?? 1), scale), shape));
  add('model.embed_tokens.weight', [11, 40], 0.5);
  add('model.norm.weight', [40], 0.5);
  add('lm_head.weight', [11, 40], 0.5);
  const p = 'model.layers.0.';
  add(p + 'input_layernorm.weight', [40], 0.5);
  add(p + 'post_attention_layernorm.weight', [40], 0.5);
  add(p + 'self_attn.q_proj.weight', [40, 40], 0.3);
  add(p + 'self_attn.k_proj.weight', [20, 40], 0.3);
  add(p + 'self_attn.v_proj.weight', [20, 40], 0.3);
  add(p + 'self_attn.o_proj.weight', [40, 40], 0.3);
  add(p + 'mlp.gate_proj.weight', [6600, 40], 0.3);
  add(p + 'mlp.up_proj.weight', [6600, 40], 0.3);
  add(p + 'mlp.down_proj.weight', [40, 6600], 0.05);
  return quantPair(config, weights, o);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

export function maxAbs(a: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]));
  return worst;
}

/** max |a − b| / max |b|. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return maxAbsDiff(a, b) / maxAbs(b);
}
