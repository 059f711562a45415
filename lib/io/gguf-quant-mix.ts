/**
 * Which ggml type each tensor of a model gets for a llama.cpp file type ("Q4_K_M", "Q8_0", ...), by
 * the rules llama-quantize applies without an importance matrix (llama.cpp's llama_tensor_get_type
 * and the choice of what to quantize at all): more bits for the output head, for some layers'
 * attn_v and ffn_down, a fallback type where a row is not a whole number of blocks.
 * @module
 */
import { PeftError } from '../errors';

/** The llama.cpp file types (llama_ftype) this writer produces, with their numbers. */
export const GGUF_FILE_TYPES = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9, Q2_K: 10, Q3_K_S: 11, Q3_K_M: 12, Q3_K_L: 13,
  Q4_K_S: 14, Q4_K_M: 15, Q5_K_S: 16, Q5_K_M: 17, Q6_K: 18, IQ4_NL: 25, IQ4_XS: 30, BF16: 32,
} as const;
export type GgufFileType = keyof typeof GGUF_FILE_TYPES;

/** ggml tensor types a file of these types holds. */
export type GgufTensorType = 'F32' | 'F16' | 'BF16' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0' | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'IQ4_NL' | 'IQ4_XS';

const DEFAULT_TYPE: Record<GgufFileType, GgufTensorType> = {
  F32: 'F32', F16: 'F16', BF16: 'BF16', Q4_0: 'Q4_0', Q4_1: 'Q4_1', Q5_0: 'Q5_0', Q5_1: 'Q5_1', Q8_0: 'Q8_0',
  Q2_K: 'Q2_K', Q3_K_S: 'Q3_K', Q3_K_M: 'Q3_K', Q3_K_L: 'Q3_K', Q4_K_S: 'Q4_K', Q4_K_M: 'Q4_K', Q5_K_S: 'Q5_K',
  Q5_K_M: 'Q5_K', Q6_K: 'Q6_K', IQ4_NL: 'IQ4_NL', IQ4_XS: 'IQ4_XS',
};

const BLOCK: Record<GgufTensorType, number> = {
  F32: 1, F16: 1, BF16: 1, Q4_0: 32, Q4_1: 32, Q5_0: 32, Q5_1: 32, Q8_0: 32, IQ4_NL: 32,
  Q2_K: 256, Q3_K: 256, Q4_K: 256, Q5_K: 256, Q6_K: 256, IQ4_XS: 256,
};

// A row that is not a whole number of its type's blocks takes this one (F16 if that does not fit either).
const FALLBACK: Partial<Record<GgufTensorType, GgufTensorType>> = {
  Q2_K: 'Q4_0', Q3_K: 'Q4_0', IQ4_XS: 'IQ4_NL', Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0',
};

/** What the rules need to know about the model. */
export interface QuantMixModel {
  layers: number;
  /** heads / KV heads */
  gqa: number;
  experts: number;
  /** llama.cpp's 70B rule (80 llama layers): attn_v gets Q5_K where it would get Q3_K / Q4_K. */
  is70B: boolean;
}

/** One tensor as the rules see it: its llama.cpp name and dimensions (outermost first). */
export interface QuantMixTensor {
  name: string;
  shape: readonly number[];
}

/** Whether llama-quantize quantizes this tensor at all (norms, 1-D tensors and routers stay as they are). */
function quantizable(t: QuantMixTensor): boolean {
  return t.name.endsWith('weight') && t.shape.length >= 2 && !t.name.includes('_norm.weight') && !t.name.includes('ffn_gate_inp.weight');
}

// More bits for the first and last eighth of the layers and every third one between.
const useMoreBits = (i: number, n: number) => i < Math.floor(n / 8) || i >= Math.floor((7 * n) / 8) || (i - Math.floor(n / 8)) % 3 === 2;

const layerOf = (name: string) => Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? -1);

/**
 * The type each tensor gets in a file of `fileType`, by name; tensors absent from the result keep
 * their dtype (F32 for norms). `hasOutput`: whether the model has its own output.weight (else
 * token_embd.weight is the head and gets the head's type).
 */
export function quantMix(fileType: GgufFileType, tensors: readonly QuantMixTensor[], model: QuantMixModel): Map<string, GgufTensorType> {
  if (!(fileType in DEFAULT_TYPE)) {
    throw new PeftError(`Expected a GGUF file type (${Object.keys(GGUF_FILE_TYPES).join(', ')}) but received ${JSON.stringify(fileType)}`, 'E_ARGUMENT');
  }
  const base = DEFAULT_TYPE[fileType];
  const out = new Map<string, GgufTensorType>();
  const hasOutput = tensors.some((t) => t.name === 'output.weight');
  const quantizedBase = BLOCK[base] > 1;
  let attnV = 0;
  const nAttnV = tensors.filter((t) => t.name.includes('attn_v.weight') || t.name.includes('attn_qkv.weight')).length;
  // llama.cpp counts attn_v in its loader's order: by layer, then by name.
  const ordered = [...tensors].sort((a, b) => layerOf(a.name) - layerOf(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const t of ordered) {
    if (!quantizable(t)) continue;
    if (!quantizedBase) {
      out.set(t.name, base);
      continue;
    }
    let type = base;
    const f = fileType;
    const head = t.name === 'output.weight' || (!hasOutput && t.name === 'token_embd.weight');
    const cols = t.shape[t.shape.length - 1];
    if (head) {
      type = cols % BLOCK[type] !== 0 ? 'Q8_0' : type !== 'Q8_0' ? 'Q6_K' : type;
    } else if (t.name === 'token_embd.weight') {
      // the default type
    } else if (t.name.includes('attn_v.weight')) {
      if (f === 'Q2_K') type = model.gqa >= 4 ? 'Q4_K' : 'Q3_K';
      else if (f === 'Q3_K_M') type = attnV < 2 ? 'Q5_K' : 'Q4_K';
      else if (f === 'Q3_K_L') type = 'Q5_K';
      else if ((f === 'IQ4_NL' || f === 'IQ4_XS') && model.gqa >= 4) type = 'Q5_K';
      else if ((f === 'Q4_K_M' || f === 'Q5_K_M') && useMoreBits(attnV, nAttnV)) type = 'Q6_K';
      else if (f === 'Q4_K_S' && attnV < 4) type = 'Q5_K';
      if (model.is70B && (type === 'Q3_K' || type === 'Q4_K')) type = 'Q5_K';
      if (model.experts === 8) type = 'Q8_0';
      attnV++;
    } else if (t.name.includes('attn_k.weight')) {
      if (model.experts === 8) type = 'Q8_0';
    } else if (t.name.includes('ffn_down')) {
      const i = layerOf(t.name), n = model.layers;
      if (f === 'Q2_K') type = 'Q3_K';
      else if (f === 'Q3_K_M') type = i < Math.floor(n / 16) ? 'Q5_K' : 'Q4_K';  // the non-Falcon branch
      else if (f === 'Q3_K_L') type = 'Q5_K';
      else if (f === 'Q4_K_M') type = useMoreBits(i, n) ? 'Q6_K' : type;
      else if (i < Math.floor(n / 8) && (f === 'IQ4_NL' || f === 'IQ4_XS')) type = 'Q5_K';
      else if (f === 'Q5_K_M' && useMoreBits(i, n)) type = 'Q6_K';
      else if (f === 'Q4_K_S' && i < Math.floor(n / 8)) type = 'Q5_K';
    } else if (t.name.includes('attn_output.weight')) {
      if (model.experts === 8) {
        if (f === 'Q2_K' || f === 'Q3_K_S' || f === 'Q3_K_M' || f === 'IQ4_NL' || f === 'Q4_K_S' || f === 'Q4_K_M' || f === 'IQ4_XS') type = 'Q5_K';
      } else if (f === 'Q2_K') type = 'Q3_K';
      else if (f === 'Q3_K_M') type = 'Q4_K';
      else if (f === 'Q3_K_L') type = 'Q5_K';
    } else if (t.name.includes('attn_qkv.weight')) {
      if (f === 'Q3_K_M' || f === 'Q3_K_L') type = 'Q4_K';
      else if (f === 'Q4_K_M') type = 'Q5_K';
      else if (f === 'Q5_K_M') type = 'Q6_K';
    }
    if (cols % BLOCK[type] !== 0) {
      // A K-quant falls back to a 32-block type; whatever still does not fit is stored as F16.
      const fallback = FALLBACK[type];
      type = fallback && cols % BLOCK[fallback] === 0 ? fallback : 'F16';
    }
    out.set(t.name, type);
  }
  return out;
}
