/**
 * Quantize-on-load settings with the names of transformers' `BitsAndBytesConfig`, and the
 * `quantization_config` entry of a 4-bit checkpoint's config.json.
 */
import { PeftError } from '../errors';
import { expectObject, fail } from '../validate';
import { checkBlocksize } from './quantize';
import type { QuantType } from './quantized-tensor';

/** The dtype a 4-bit layer's products see its dequantized weight in (accumulation is f32). */
export type ComputeDType = 'f32' | 'bf16';

/**
 * 4-bit loading, as transformers' `BitsAndBytesConfig` (load_in_4bit) names it: the linear layers
 * of the blocks (q/k/v/o_proj, gate/up/down_proj) become 4-bit; embeddings, norms and the output
 * head stay in full precision.
 */
export interface BitsAndBytesConfig {
  /** Quantize the linear layers of the blocks to 4 bits. */
  load_in_4bit: boolean;
  /** 'nf4' (4-bit NormalFloat, what QLoRA uses) or 'fp4'. Default 'fp4', as transformers. */
  bnb_4bit_quant_type?: QuantType;
  /** Double-quantize the block scales (~0.37 fewer bits per parameter). Default false. */
  bnb_4bit_use_double_quant?: boolean;
  /**
   * The dtype the products see the dequantized weights in: 'f32' (default, as transformers) or
   * 'bf16' (rounded; PyTorch's names 'float32' / 'bfloat16' are accepted too). Products always
   * accumulate in f32 and activations stay f32.
   */
  bnb_4bit_compute_dtype?: ComputeDType | 'float32' | 'bfloat16';
  /** Elements per block: a power of two in [32, 4096]. Default 64 (bitsandbytes'). */
  bnb_4bit_blocksize?: number;
  /** 8-bit loading is not supported; only false is accepted. */
  load_in_8bit?: boolean;
}

/** A validated {@link BitsAndBytesConfig}. @internal */
export interface QuantSettings {
  quantType: QuantType;
  doubleQuant: boolean;
  computeDtype: ComputeDType;
  blocksize: number;
}

const KEYS = ['load_in_4bit', 'load_in_8bit', 'bnb_4bit_quant_type', 'bnb_4bit_use_double_quant', 'bnb_4bit_compute_dtype', 'bnb_4bit_blocksize'];
const COMPUTE: Record<string, ComputeDType> = { f32: 'f32', float32: 'f32', bf16: 'bf16', bfloat16: 'bf16' };

/** @internal The compute dtype named by value ('f32', 'bf16', 'float32', 'bfloat16'); E_DTYPE otherwise. */
export function computeDtypeOf(value: unknown, argument: string): ComputeDType {
  // An own key only: COMPUTE['constructor'] is a function.
  const d = typeof value === 'string' && Object.prototype.hasOwnProperty.call(COMPUTE, value) ? COMPUTE[value] : undefined;
  if (!d) fail(argument, '"f32" or "bf16" (or "float32" / "bfloat16")', value, 'E_DTYPE');
  return d;
}

/** @internal Validates options.quantization: null when absent or load_in_4bit is false. */
export function quantSettings(value: unknown, argument = 'option quantization'): QuantSettings | null {
  if (value === undefined || value === null) return null;
  const o = expectObject(value, argument);
  const unknown = Object.keys(o).find((k) => !KEYS.includes(k));
  if (unknown) fail(`${argument}.${unknown}`, `one of the keys ${KEYS.join(', ')}`, unknown, 'E_CONFIG');
  if (o.load_in_8bit !== undefined && o.load_in_8bit !== false) {
    throw new PeftError(`Expected load_in_8bit false or absent for ${argument}: 8-bit loading is not supported (use load_in_4bit)`, 'E_UNSUPPORTED');
  }
  if (typeof o.load_in_4bit !== 'boolean') fail(`${argument}.load_in_4bit`, 'a boolean', o.load_in_4bit, 'E_CONFIG');
  const quantType = o.bnb_4bit_quant_type ?? 'fp4';
  if (quantType !== 'nf4' && quantType !== 'fp4') fail(`${argument}.bnb_4bit_quant_type`, '"nf4" or "fp4"', quantType, 'E_CONFIG');
  const doubleQuant = o.bnb_4bit_use_double_quant ?? false;
  if (typeof doubleQuant !== 'boolean') fail(`${argument}.bnb_4bit_use_double_quant`, 'a boolean', doubleQuant, 'E_CONFIG');
  const computeDtype = computeDtypeOf(o.bnb_4bit_compute_dtype ?? 'f32', `${argument}.bnb_4bit_compute_dtype`);
  const blocksize = o.bnb_4bit_blocksize ?? 64;
  if (typeof blocksize !== 'number') fail(`${argument}.bnb_4bit_blocksize`, 'a power of two in [32, 4096]', blocksize, 'E_RANGE');
  checkBlocksize(blocksize, `${argument}.bnb_4bit_blocksize`);
  return o.load_in_4bit ? { quantType, doubleQuant, computeDtype, blocksize } : null;
}

/** @internal The compute dtype a checkpoint's config.json asks for (its quantization_config), if any. */
export function checkpointComputeDtype(json: Record<string, unknown> | undefined): ComputeDType | undefined {
  const q = json?.quantization_config as Record<string, unknown> | undefined;
  const d = q?.bnb_4bit_compute_dtype;
  if (typeof d !== 'string') return undefined;
  // float16 computes in f32 here (there is no f16 product); anything else unknown too.
  return Object.prototype.hasOwnProperty.call(COMPUTE, d) ? COMPUTE[d] : 'f32';
}

/** @internal config.json's quantization_config for a 4-bit model, as transformers writes it. */
export function quantizationConfigJson(s: QuantSettings): Record<string, unknown> {
  return {
    quant_method: 'bitsandbytes',
    _load_in_4bit: true,
    _load_in_8bit: false,
    load_in_4bit: true,
    load_in_8bit: false,
    bnb_4bit_quant_type: s.quantType,
    bnb_4bit_use_double_quant: s.doubleQuant,
    bnb_4bit_compute_dtype: s.computeDtype === 'bf16' ? 'bfloat16' : 'float32',
    bnb_4bit_quant_storage: 'uint8',
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: null,
    llm_int8_threshold: 6.0,
  };
}
