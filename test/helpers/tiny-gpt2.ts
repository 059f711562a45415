/** The tensors of a small random GPT-2 in Hugging Face's layout (Conv1D weights [in, out]), in a fixed order. */
import { randomArray } from './random';

export interface Gpt2Sizes {
  hidden: number;
  layers: number;
  inner: number;
  vocab: number;
  positions: number;
}

/**
 * name → [shape, values], drawn from `random` in a fixed order: embeddings, then each block, then ln_f.
 * LayerNorm weights are 1 ± 0.2, biases ± 0.1, everything else ± 0.4 (positions ± 0.2).
 */
export function gpt2Weights(random: () => number, s: Gpt2Sizes): Map<string, [number[], Float32Array]> {
  const w = new Map<string, [number[], Float32Array]>();
  const add = (name: string, shape: number[], scale = 0.4, offset = 0) =>
    w.set(name, [shape, randomArray(random, shape.reduce((a, b) => a * b, 1), scale).map((v) => v + offset)]);
  const H = s.hidden;
  add('wte.weight', [s.vocab, H]);
  add('wpe.weight', [s.positions, H], 0.2);
  for (let l = 0; l < s.layers; l++) {
    add(`h.${l}.ln_1.weight`, [H], 0.2, 1);
    add(`h.${l}.ln_1.bias`, [H], 0.1);
    add(`h.${l}.attn.c_attn.weight`, [H, 3 * H]);
    add(`h.${l}.attn.c_attn.bias`, [3 * H], 0.1);
    add(`h.${l}.attn.c_proj.weight`, [H, H]);
    add(`h.${l}.attn.c_proj.bias`, [H], 0.1);
    add(`h.${l}.ln_2.weight`, [H], 0.2, 1);
    add(`h.${l}.ln_2.bias`, [H], 0.1);
    add(`h.${l}.mlp.c_fc.weight`, [H, s.inner]);
    add(`h.${l}.mlp.c_fc.bias`, [s.inner], 0.1);
    add(`h.${l}.mlp.c_proj.weight`, [s.inner, H]);
    add(`h.${l}.mlp.c_proj.bias`, [H], 0.1);
  }
  add('ln_f.weight', [H], 0.2, 1);
  add('ln_f.bias', [H], 0.1);
  return w;
}
