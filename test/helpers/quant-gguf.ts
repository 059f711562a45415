/**
 * Random-weight Llama GGUF files whose sizes are whole K-quant blocks (hidden 256, FFN 512), with
 * the real stories260K vocabulary, and their linear layers stored in chosen ggml block types: a
 * quantized base model such as llama.cpp's converter and llama-quantize make, small enough to train.
 */
import { quantizeGgml, readGguf, tensor, writeGguf, type GgmlQuantType, type GgufMetadataValue, type Tensor } from '../../lib';
import type { GgmlTensor } from '../../lib/quant/ggml-tensor';
import { copyGgufMetadata } from '../../lib/io/gguf-copy';
import { STORIES_GGUF } from './models';
import { rng } from './random';

export interface QuantGgufShape {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
}

export const QUANT_GGUF_SHAPE: QuantGgufShape = { hidden: 256, layers: 8, heads: 4, kvHeads: 2, ffn: 512 };

/** The type a tensor is stored in, by its llama.cpp name; undefined: F32. */
export type TypeOf = (name: string, shape: number[]) => GgmlQuantType | undefined;

/** Normal(0, 1) by Box-Muller. */
function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/**
 * Writes a llama GGUF with random weights of `shape` (512-token stories260K vocabulary, separate
 * output head); the 2-D weights whose typeOf names a block type are stored quantized.
 */
export function writeQuantGguf(file: string, typeOf: TypeOf, shape: QuantGgufShape = QUANT_GGUF_SHAPE, seed = 1): void {
  const stories = readGguf(STORIES_GGUF);
  const vocabKeys = new Set(Object.keys(stories.metadata).filter((k) => !k.startsWith('tokenizer.') && k !== 'general.architecture' && k !== 'general.name'));
  const metadata: Record<string, GgufMetadataValue> = {
    ...copyGgufMetadata(stories, vocabKeys),
    'llama.context_length': { type: 'u32', value: 512 },
    'llama.embedding_length': { type: 'u32', value: shape.hidden },
    'llama.feed_forward_length': { type: 'u32', value: shape.ffn },
    'llama.attention.head_count': { type: 'u32', value: shape.heads },
    'llama.attention.head_count_kv': { type: 'u32', value: shape.kvHeads },
    'llama.block_count': { type: 'u32', value: shape.layers },
    'llama.rope.dimension_count': { type: 'u32', value: shape.hidden / shape.heads },
    'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: 1e-5 },
  };
  const vocab = (stories.metadata['tokenizer.ggml.tokens'] as string[]).length;
  stories.dispose();
  const random = rng(seed);
  const D = shape.hidden / shape.heads;
  const kv = shape.kvHeads * D;
  const specs: [string, number[], number][] = [['token_embd.weight', [vocab, shape.hidden], 1], ['output_norm.weight', [shape.hidden], 0], ['output.weight', [vocab, shape.hidden], 0.05]];
  for (let l = 0; l < shape.layers; l++) {
    specs.push(
      [`blk.${l}.attn_norm.weight`, [shape.hidden], 0],
      [`blk.${l}.attn_q.weight`, [shape.hidden, shape.hidden], 0.06],
      [`blk.${l}.attn_k.weight`, [kv, shape.hidden], 0.06],
      [`blk.${l}.attn_v.weight`, [kv, shape.hidden], 0.06],
      [`blk.${l}.attn_output.weight`, [shape.hidden, shape.hidden], 0.06],
      [`blk.${l}.ffn_norm.weight`, [shape.hidden], 0],
      [`blk.${l}.ffn_gate.weight`, [shape.ffn, shape.hidden], 0.06],
      [`blk.${l}.ffn_up.weight`, [shape.ffn, shape.hidden], 0.06],
      [`blk.${l}.ffn_down.weight`, [shape.hidden, shape.ffn], 0.04],
    );
  }
  const tensors: Record<string, Tensor | GgmlTensor> = {};
  for (const [name, dims, scale] of specs) {
    const n = dims.reduce((a, b) => a * b, 1);
    // Norm weights near 1; matrices normal with a few larger entries per row, as trained weights have.
    const values = Float32Array.from({ length: n }, () => (scale === 0 ? 1 + 0.1 * normal(random) : scale * normal(random) * (random() < 0.01 ? 6 : 1)));
    const t = tensor(values, dims);
    const type = dims.length === 2 ? typeOf(name, dims) : undefined;
    tensors[name] = type ? quantizeGgml(t, type) : t;
    if (type) t.dispose();
  }
  writeGguf(file, metadata, tensors);
  for (const t of Object.values(tensors)) t.dispose();
}

/**
 * Sets every trainable tensor of `peft` to seeded random values around its kind's scale (LoRA B is
 * zero at init, IA3 vectors are one): an adapter whose effect and gradients involve every factor.
 */
export function randomizeAdapter(peft: { trainableParameters(): Record<string, Tensor>; setParameterValue(name: string, value: Tensor): void }, seed: number, scale = 0.05): void {
  const random = rng(seed);
  for (const [name, t] of Object.entries(peft.trainableParameters())) {
    const around = /ia3|magnitude/.test(name) ? 1 : 0;
    const spread = around ? 0.3 : scale;
    peft.setParameterValue(name, tensor(Float32Array.from({ length: t.size }, () => around + spread * normal(random)), [...t.shape]));
  }
}
