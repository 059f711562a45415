/**
 * A model's 4-bit weights: which weights quantize on load, quantizing them, reading them from a
 * bitsandbytes checkpoint, and their native form.
 * @internal
 */
import type { NativeQuantWeight } from '../native';
import { handleOf, Tensor } from '../tensor';
import { bnbQuantizedNames, readBnbQuantized, type TensorLookup } from './bnb-format';
import type { ComputeDType, QuantSettings } from './bnb-config';
import { quantizeAsync } from './quantize';
import { GgmlTensor } from './ggml-tensor';
import { nativeQuant4, QuantizedTensor } from './quantized-tensor';

/** A model weight held quantized: bitsandbytes' 4-bit layout, or a ggml block format (from a GGUF file). */
export type ModelQuantizedTensor = QuantizedTensor | GgmlTensor;

/**
 * The linear layers of the blocks (Llama family, GPT-2): what load_in_4bit quantizes (embeddings,
 * norms and the head stay).
 */
const BLOCK_LINEAR = /^(model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)|transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj))\.weight$/;

export function isBlockLinearWeight(name: string): boolean {
  return BLOCK_LINEAR.test(name);
}

/** The tensor names bitsandbytes stores for the 4-bit weight `prefix` (those present or not). */
export function bnbPartNames(prefix: string): string[] {
  return ['', '.absmax', '.quant_map', '.nested_absmax', '.nested_quant_map', '.quant_state.bitsandbytes__nf4', '.quant_state.bitsandbytes__fp4'].map(
    (s) => prefix + s,
  );
}

/**
 * Moves the block linears of `weights` (the dense weights, in the dtype the model would hold them)
 * into 4-bit, one at a time on a worker thread. `weights` keeps the rest.
 */
export async function quantizeBlockLinears(weights: Map<string, Tensor>, settings: QuantSettings): Promise<Map<string, QuantizedTensor>> {
  const out = new Map<string, QuantizedTensor>();
  for (const [name, t] of [...weights]) {
    if (!isBlockLinearWeight(name) || t.shape.length !== 2) continue;
    out.set(name, await quantizeAsync(t, { quant_type: settings.quantType, blocksize: settings.blocksize, double_quant: settings.doubleQuant }));
    weights.delete(name);
  }
  return out;
}

/** The 4-bit weights stored in a checkpoint in bitsandbytes' format, and every tensor name they use. */
export function readQuantizedWeights(source: TensorLookup): { weights: Map<string, QuantizedTensor>; keys: Set<string> } {
  const weights = new Map<string, QuantizedTensor>();
  const keys = new Set<string>();
  for (const name of bnbQuantizedNames(source)) {
    weights.set(name, readBnbQuantized(source, name));
    for (const k of bnbPartNames(name)) keys.add(k);
  }
  return { weights, keys };
}

/** The native form of a model's quantized weight. */
export function nativeQuantWeight(q: ModelQuantizedTensor, computeDtype: ComputeDType, argument: string): NativeQuantWeight {
  if (q instanceof GgmlTensor) return { data: handleOf(q.data, `${argument}.data`), shape: [...q.shape], quantType: 'ggml', ggmlType: q.type, computeDtype };
  return { ...nativeQuant4(q, argument), shape: [...q.shape], quantType: q.quant_type, dtype: q.dtype, computeDtype };
}

/** A QuantizedTensor or GgmlTensor sharing the native model's live parts. */
export function quantizedFromNative(n: NativeQuantWeight): ModelQuantizedTensor {
  if (n.quantType === 'ggml') return new GgmlTensor(new Tensor(n.data), n.ggmlType as GgmlTensor['type'], n.shape);
  return new QuantizedTensor({
    data: new Tensor(n.data),
    absmax: new Tensor(n.absmax),
    quant_map: new Tensor(n.quantMap),
    nested:
      n.nestedAbsmax && n.nestedQuantMap && n.nestedBlocksize !== undefined && n.offset !== undefined
        ? { absmax: new Tensor(n.nestedAbsmax), quant_map: new Tensor(n.nestedQuantMap), blocksize: n.nestedBlocksize, offset: n.offset }
        : null,
    shape: n.shape,
    dtype: n.dtype,
    blocksize: n.blocksize,
    quant_type: n.quantType,
  });
}
