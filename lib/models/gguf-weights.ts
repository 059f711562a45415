/**
 * Llama weights from a GGUF file under Hugging Face names. llama.cpp's converter reorders the rows
 * of q_proj and k_proj within each head (pairs (i, i + D/2) become neighbours, for its rotary
 * kernel); the inverse reordering here restores Hugging Face's rotate-half layout.
 */
import type { GgufFile, GgufTensorInfo } from '../io/gguf';
import { PeftError } from '../errors';
import { GgmlTensor, ggmlFormat, isGgmlQuantType } from '../quant/ggml-tensor';
import { tensor, type Tensor } from '../tensor';
import type { LlamaConfig } from './config';

const LAYER_NAMES: Record<string, string> = {
  attn_norm: 'input_layernorm',
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  attn_q_norm: 'self_attn.q_norm',
  ffn_gate_inp: 'block_sparse_moe.gate',  // Mixtral's router
  attn_k_norm: 'self_attn.k_norm',
  ffn_norm: 'post_attention_layernorm',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
};

// Phi-3's fused projections under their llama.cpp names (in a phi3 file ffn_up is gate and up together).
const PHI3_NAMES: Record<string, string> = { ...LAYER_NAMES, attn_qkv: 'self_attn.qkv_proj', ffn_up: 'mlp.gate_up_proj' };

// Gemma 2's four norms per block (ffn_norm is the one before the MLP).
const GEMMA2_NAMES: Record<string, string> = {
  ...LAYER_NAMES,
  post_attention_norm: 'post_attention_layernorm',
  ffn_norm: 'pre_feedforward_layernorm',
  post_ffw_norm: 'post_feedforward_layernorm',
};

/** The Hugging Face name of a llama.cpp tensor name (of a file of `arch`), or undefined for tensors we do not use. */
export function huggingFaceName(ggufName: string, arch = 'llama'): string | undefined {
  const names = arch === 'phi3' ? PHI3_NAMES : arch === 'gemma2' || arch === 'gemma3_text' ? GEMMA2_NAMES : LAYER_NAMES;
  if (ggufName === 'token_embd.weight') return 'model.embed_tokens.weight';
  if (ggufName === 'output_norm.weight') return 'model.norm.weight';
  if (ggufName === 'output.weight') return 'lm_head.weight';
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(ggufName);
  if (!m || !names[m[2]]) return undefined;
  return `model.layers.${m[1]}.${names[m[2]]}.${m[3]}`;
}

/**
 * Undoes llama.cpp's rotary row order: within each head of D rows, GGUF row 2i + j holds Hugging Face
 * row j·D/2 + i. weight: [heads · D, cols] (or a bias [heads · D]).
 */
export function unpermuteRotary(weight: Tensor, heads: number): Tensor {
  const rows = weight.shape[0];
  const cols = weight.shape.length > 1 ? weight.shape[1] : 1;
  const D = rows / heads;
  if (!Number.isInteger(D) || D % 2 !== 0) {
    throw new PeftError(`Expected ${heads} heads of an even size in a tensor with ${rows} rows`, 'E_CONFIG');
  }
  const src = weight.toFloat32Array();
  const out = new Float32Array(src.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < D / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const from = h * D + 2 * i + j;
        const to = h * D + j * (D / 2) + i;
        out.set(src.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return tensor(out, [...weight.shape]);
}

// Mixtral's experts, stacked in one [experts, rows, cols] tensor per projection.
const EXPERT_PARTS: Record<string, string> = { ffn_gate_exps: 'w1', ffn_up_exps: 'w3', ffn_down_exps: 'w2' };

/**
 * A stacked expert tensor `blk.N.ffn_{gate,up,down}_exps.weight` [experts, rows, cols] as one
 * [rows, cols] tensor per expert under Hugging Face's names; null for other tensors.
 */
function splitExperts(ggufName: string, t: Tensor): Map<string, Tensor> | null {
  const m = /^blk\.(\d+)\.(ffn_(?:gate|up|down)_exps)\.weight$/.exec(ggufName);
  if (!m) return null;
  if (t.shape.length !== 3) throw new PeftError(`Expected ${ggufName} of shape [experts, rows, cols] but it has ${JSON.stringify(t.shape)}`, 'E_FORMAT');
  const [experts, rows, cols] = t.shape;
  const values = t.toFloat32Array();
  const out = new Map<string, Tensor>();
  for (let e = 0; e < experts; e++) {
    out.set(`model.layers.${m[1]}.block_sparse_moe.experts.${e}.${EXPERT_PARTS[m[2]]}.weight`, tensor(values.slice(e * rows * cols, (e + 1) * rows * cols), [rows, cols]));
  }
  return out;
}

/** Rows of a block-quantized matrix in the order `rowOf` gives: row `to` takes stored row rowOf(to). Frees q. */
function permuteBlockRows(q: GgmlTensor, rowOf: (to: number) => number): GgmlTensor {
  const [rows, cols] = q.shape;
  const f = ggmlFormat(q.type);
  const rowBytes = (cols / f.block) * f.bytes;
  const src = q.data.toTypedArray() as Uint8Array;
  const out = new Uint8Array(src.length);
  for (let to = 0; to < rows; to++) out.set(src.subarray(rowOf(to) * rowBytes, (rowOf(to) + 1) * rowBytes), to * rowBytes);
  q.dispose();
  return new GgmlTensor(tensor(out, [out.length]), q.type, [rows, cols]);
}

/** {@link unpermuteRotary} on the rows of a block-quantized weight (rows never share a block: exact). */
function unpermuteRotaryBlocks(q: GgmlTensor, heads: number): GgmlTensor {
  const D = q.shape[0] / heads;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new PeftError(`Expected ${heads} heads of an even size in a tensor with ${q.shape[0]} rows`, 'E_CONFIG');
  // Hugging Face row h·D + j·D/2 + i is GGUF row h·D + 2i + j.
  return permuteBlockRows(q, (to) => {
    const h = Math.floor(to / D), r = to % D, j = Math.floor(r / (D / 2)), i = r % (D / 2);
    return h * D + 2 * i + j;
  });
}

/** The inverse of {@link unpermuteRotaryBlocks}: Hugging Face rows back to llama.cpp's rotary order. Frees q. */
export function permuteRotaryBlocks(q: GgmlTensor, heads: number): GgmlTensor {
  const D = q.shape[0] / heads;
  // GGUF row h·D + 2i + j is Hugging Face row h·D + j·D/2 + i.
  return permuteBlockRows(q, (to) => {
    const h = Math.floor(to / D), r = to % D, i = Math.floor(r / 2), j = r % 2;
    return h * D + j * (D / 2) + i;
  });
}

// The weights of linear layers, which a model can hold in a ggml block format (the embeddings cannot).
const LINEAR_WEIGHT = /(^lm_head|\.(q_proj|k_proj|v_proj|o_proj|qkv_proj|gate_proj|up_proj|down_proj|gate_up_proj))\.weight$/;

/** Options of {@link llamaWeightsFromGguf}. */
export interface GgufWeightOptions {
  /** Keep block-quantized linear layers as stored (GgmlTensor) instead of dequantizing them. */
  keepQuantized?: boolean;
  /** Refuse NaN / infinite block scales of the kept ones (E_NONFINITE). Default true. */
  checkFinite?: boolean;
}

/** A Llama GGUF's weights: dense ones (F16 as f32) and, with keepQuantized, the block-quantized linears. */
export interface GgufWeights {
  dense: Map<string, Tensor>;
  quantized: Map<string, GgmlTensor>;
}

function keptQuantized(file: GgufFile, info: GgufTensorInfo, name: string, options: GgufWeightOptions): GgmlTensor | undefined {
  if (!options.keepQuantized || !isGgmlQuantType(info.type) || info.shape.length !== 2 || !LINEAR_WEIGHT.test(name)) return undefined;
  return new GgmlTensor(file.blocks(info.name, options.checkFinite ?? true), info.type, info.shape);
}

/**
 * All of a Llama GGUF's weights, by Hugging Face name, Q/K rows in Hugging Face order, F16 as f32;
 * with options.keepQuantized, linear layers stored in a ggml block format stay in it.
 */
export function llamaWeightsFromGguf(file: GgufFile, config: LlamaConfig, options: GgufWeightOptions = {}): GgufWeights {
  const weights = new Map<string, Tensor>();
  const quantized = new Map<string, GgmlTensor>();
  // Only llama-architecture files use the interleaved order (qwen2 keeps rotate-half, NEOX style).
  const permuted = config.modelType === 'llama' || config.modelType === 'mistral';
  for (const info of file.tensorInfos) {
    if (config.numExperts && /_exps\.weight$/.test(info.name)) {
      const stacked = file.tensor(info.name);
      for (const [n, t] of splitExperts(info.name, stacked) ?? []) weights.set(n, t);
      stacked.dispose();
      continue;
    }
    const name = huggingFaceName(info.name, config.modelType);
    if (!name) continue;
    let q = keptQuantized(file, info, name, options);
    if (q) {
      if (permuted && /q_proj\.weight$/.test(name)) q = unpermuteRotaryBlocks(q, config.numHeads);
      if (permuted && /k_proj\.weight$/.test(name)) q = unpermuteRotaryBlocks(q, config.numKvHeads);
      quantized.set(name, q);
      continue;
    }
    let t = file.tensor(info.name);
    // F16 files (the usual llama.cpp export) run in f32: the model computes with f32 or bf16 weights,
    // and bf16 would drop three bits of an f16 mantissa.
    if (t.dtype === 'f16') {
      const f32 = t.to('f32');
      t.dispose();
      t = f32;
    }
    // llama.cpp's converter stores Gemma's norm weights as 1 + w (Gemma 3's per-head q/k norms too:
    // it shifts every *norm.weight); the model keeps Hugging Face's w.
    if ((config.modelType === 'gemma2' || config.modelType === 'gemma3_text') && /(layernorm|model\.norm|q_norm|k_norm)\.weight$/.test(name)) {
      t = tensor(t.toFloat32Array().map((v) => v - 1), [...t.shape]);
    }
    if (permuted && /q_proj\.(weight|bias)$/.test(name)) t = unpermuteRotary(t, config.numHeads);
    if (permuted && /k_proj\.(weight|bias)$/.test(name)) t = unpermuteRotary(t, config.numKvHeads);
    weights.set(name, t);
  }
  return { dense: weights, quantized };
}
