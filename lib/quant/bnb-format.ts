/**
 * bitsandbytes' serialization of a 4-bit weight (its `QuantState.as_dict(packed=True)`), as
 * safetensors tensors next to the weight:
 *   `weight`                                  u8 [ceil(n/2), 1]  packed codes
 *   `weight.absmax`                           f32 [blocks], or u8 [blocks] when double-quantized
 *   `weight.quant_map`                        f32 [16]
 *   `weight.nested_absmax`                    f32 [ceil(blocks/256)]   (double quantization only)
 *   `weight.nested_quant_map`                 f32 [256]                (double quantization only)
 *   `weight.quant_state.bitsandbytes__nf4`    u8: UTF-8 JSON {quant_type, blocksize, dtype, shape,
 *                                             nested_blocksize, nested_dtype, nested_offset} (`__fp4` for FP4)
 */
import { PeftError } from '../errors';
import { Tensor, tensor } from '../tensor';
import { fail, preview } from '../validate';
import { checkBlocksize } from './quantize';
import { QuantizedTensor, type NestedQuantState, type QuantSourceDType, type QuantType } from './quantized-tensor';
import { PythonFloat, pythonJsonDumps, type PythonJsonValue } from './python-json';

/** Tensors by name: a {@link SafetensorsSource} (a loaded checkpoint) or a plain record. */
export interface TensorLookup {
  has(name: string): boolean;
  tensor(name: string): Tensor;
  keys(): string[];
}

const QUANT_STATE = '.quant_state.bitsandbytes__';
const TORCH_DTYPES: Record<QuantSourceDType, string> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };
const JSON_KEYS = ['quant_type', 'blocksize', 'dtype', 'shape', 'nested_blocksize', 'nested_dtype', 'nested_offset'];

function lookupOf(source: TensorLookup | Record<string, Tensor>): TensorLookup {
  if (typeof source === 'object' && source !== null && typeof (source as TensorLookup).tensor === 'function') {
    return source as TensorLookup;
  }
  if (typeof source !== 'object' || source === null) fail('source', 'a SafetensorsSource or a record of Tensors', source);
  const record = source as Record<string, Tensor>;
  return {
    has: (name) => Object.prototype.hasOwnProperty.call(record, name),
    tensor: (name) => record[name],
    keys: () => Object.keys(record),
  };
}

/** A copy of t's bytes as u8 of the given shape (Tensors have no reshape; these are small or one-off). */
function u8Tensor(t: Tensor, shape: number[]): Tensor {
  return tensor(t.toTypedArray() as Uint8Array, shape, 'u8');
}

/**
 * The tensors bitsandbytes saves for a 4-bit weight, named `${prefix}`, `${prefix}.absmax`, ...,
 * in its order; write them with {@link writeSafetensors} (together with the rest of a model).
 * @param prefix The weight's name, e.g. `model.layers.0.mlp.down_proj.weight`.
 */
export function bnbTensors(q: QuantizedTensor, prefix = 'weight'): Record<string, Tensor> {
  if (!(q instanceof QuantizedTensor)) fail('q', 'a QuantizedTensor', q);
  if (typeof prefix !== 'string' || prefix === '') fail('prefix', 'a tensor name', prefix);
  const half = Math.ceil(q.size / 2);
  const entries: [string, PythonJsonValue][] = [
    ['quant_type', q.quant_type],
    ['blocksize', q.blocksize],
    ['dtype', TORCH_DTYPES[q.dtype]],
    ['shape', [...q.shape]],
  ];
  const out: Record<string, Tensor> = {
    [prefix]: q.data.shape.length === 2 ? q.data : u8Tensor(q.data, [half, 1]),
    [`${prefix}.absmax`]: q.absmax,
    [`${prefix}.quant_map`]: q.quant_map,
  };
  if (q.nested) {
    out[`${prefix}.nested_absmax`] = q.nested.absmax;
    out[`${prefix}.nested_quant_map`] = q.nested.quant_map;
    entries.push(['nested_blocksize', q.nested.blocksize], ['nested_dtype', 'float32'], ['nested_offset', new PythonFloat(q.nested.offset)]);
  }
  const json = new TextEncoder().encode(pythonJsonDumps(entries));
  out[`${prefix}${QUANT_STATE}${q.quant_type}`] = tensor(json, [json.length], 'u8');
  return out;
}

/** The weights of a checkpoint stored as bitsandbytes 4-bit (the names before `.quant_state.bitsandbytes__*`). */
export function bnbQuantizedNames(source: TensorLookup | Record<string, Tensor>): string[] {
  const names = new Set<string>();
  for (const key of lookupOf(source).keys()) {
    const at = key.lastIndexOf(QUANT_STATE);
    if (at > 0 && /^(nf4|fp4)$/.test(key.slice(at + QUANT_STATE.length))) names.add(key.slice(0, at));
  }
  return [...names];
}

function formatError(key: string, message: string): never {
  throw new PeftError(`bitsandbytes 4-bit weight: ${key}: ${message}`, 'E_FORMAT');
}

/** The tensor at key with the given dtype and one of `shapes` (any shape when null); E_FORMAT naming the key. */
function part(source: TensorLookup, key: string, dtype: 'u8' | 'f32', shapes: number[][] | null, dtypeNote = ''): Tensor {
  if (!source.has(key)) formatError(key, 'missing');
  let t: Tensor;
  try {
    t = source.tensor(key);
  } catch (err) {
    return formatError(key, `could not be read (${(err as Error).message})`);
  }
  if (!(t instanceof Tensor)) formatError(key, 'not a Tensor');
  if (t.dtype !== dtype) formatError(key, `expected dtype ${dtype} but found ${t.dtype}${dtypeNote}`);
  const shape = t.shape;
  if (shapes && !shapes.some((s) => s.length === shape.length && s.every((d, i) => d === shape[i]))) {
    formatError(key, `expected shape ${shapes.map((s) => `[${s.join(', ')}]`).join(' or ')} but found [${shape.join(', ')}]`);
  }
  return t;
}

function finiteTable(t: Tensor, key: string): Tensor {
  if (t.toFloat32Array().some((v) => !Number.isFinite(v))) formatError(key, 'holds a NaN or Inf');
  return t;
}

const F32_MAX = 3.4028234663852886e38;
/** The largest magnitude among the finite values (NaN and infinities are loadModel's E_NONFINITE check). */
const maxAbs = (t: Tensor) => t.toFloat32Array().reduce((m, v) => (Number.isFinite(v) ? Math.max(m, Math.abs(v)) : m), 0);

/**
 * A code times its block's scale must stay finite in f32: finite parts whose product overflows would
 * silently make weights infinite. (NaN or infinite scales themselves are refused by loadModel's
 * weight check, E_NONFINITE.)
 */
function checkScales(prefix: string, absmax: Tensor, quantMap: Tensor, nested: NestedQuantState | null): void {
  const largest = nested ? maxAbs(nested.quant_map) * maxAbs(nested.absmax) + Math.abs(nested.offset) : maxAbs(absmax);
  const code = maxAbs(quantMap);
  if (largest * code > F32_MAX) {
    formatError(`${prefix}.quant_map`, `codes up to ${code} times block scales up to ${largest} overflow float32`);
  }
}

function parseQuantState(source: TensorLookup, key: string): Record<string, unknown> {
  const t = part(source, key, 'u8', null);
  if (t.shape.length !== 1) formatError(key, `expected a 1-D u8 tensor but found shape [${t.shape.join(', ')}]`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(t.toTypedArray() as Uint8Array));
  } catch (err) {
    return formatError(key, `does not hold UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) formatError(key, 'expected a JSON object');
  const state = parsed as Record<string, unknown>;
  for (const k of Object.keys(state)) if (!JSON_KEYS.includes(k)) formatError(key, `unknown entry "${k}"`);
  return state;
}

function jsonBlocksize(state: Record<string, unknown>, name: string, key: string): number {
  const v = state[name];
  if (typeof v !== 'number') formatError(key, `expected a number for ${name} but found ${preview(v)}`);
  try {
    return checkBlocksize(v, name);
  } catch (err) {
    return formatError(key, (err as Error).message);
  }
}

function jsonShape(state: Record<string, unknown>, key: string): number[] {
  const v = state.shape;
  if (!Array.isArray(v) || !v.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    formatError(key, `expected a list of non-negative integers for shape but found ${preview(v)}`);
  }
  if (!Number.isSafeInteger((v as number[]).reduce((a, b) => a * b, 1))) formatError(key, `expected a shape of at most 2^53 elements but found ${preview(v)}`);
  return v as number[];
}

/**
 * Reads a 4-bit weight saved by bitsandbytes (or {@link bnbTensors}) from a checkpoint, validating
 * every part: a missing or mis-sized tensor, bad JSON or an unknown entry is `E_FORMAT` naming the key.
 * Tensors of a mapped safetensors file stay views of it.
 * @param prefix The weight's name, e.g. `model.layers.0.mlp.down_proj.weight`.
 */
export function readBnbQuantized(source: TensorLookup | Record<string, Tensor>, prefix = 'weight'): QuantizedTensor {
  const lookup = lookupOf(source);
  if (typeof prefix !== 'string' || prefix === '') fail('prefix', 'a tensor name', prefix);
  const keys = (['nf4', 'fp4'] as QuantType[]).map((t) => `${prefix}${QUANT_STATE}${t}`).filter((k) => lookup.has(k));
  if (keys.length !== 1) {
    formatError(`${prefix}${QUANT_STATE}nf4`, keys.length === 0 ? 'missing (no bitsandbytes quant_state for this weight)' : 'both __nf4 and __fp4 quant states are present');
  }
  const stateKey = keys[0];
  const state = parseQuantState(lookup, stateKey);
  const quantType = stateKey.slice(-3) as QuantType;
  if (state.quant_type !== quantType) formatError(stateKey, `quant_type ${preview(state.quant_type)} does not match the key`);
  const blocksize = jsonBlocksize(state, 'blocksize', stateKey);
  const dtype = (Object.keys(TORCH_DTYPES) as QuantSourceDType[]).find((d) => TORCH_DTYPES[d] === state.dtype);
  if (!dtype) formatError(stateKey, `expected dtype float32, bfloat16 or float16 but found ${preview(state.dtype)}`);
  const shape = jsonShape(state, stateKey);
  const n = shape.reduce((a, b) => a * b, 1);
  const blocks = Math.ceil(n / blocksize);
  const half = Math.ceil(n / 2);

  const nestedKeys = ['nested_blocksize', 'nested_dtype', 'nested_offset'].filter((k) => k in state);
  const nestedTensors = [`${prefix}.nested_absmax`, `${prefix}.nested_quant_map`].filter((k) => lookup.has(k));
  const isNested = nestedKeys.length > 0 || nestedTensors.length > 0;
  if (isNested && (nestedKeys.length !== 3 || nestedTensors.length !== 2)) {
    formatError(stateKey, 'double quantization needs nested_blocksize, nested_dtype, nested_offset and the tensors nested_absmax and nested_quant_map; some are missing');
  }
  let nested: NestedQuantState | null = null;
  if (isNested) {
    const nestedBlocksize = jsonBlocksize(state, 'nested_blocksize', stateKey);
    if (state.nested_dtype !== 'float32') formatError(stateKey, `expected nested_dtype float32 but found ${preview(state.nested_dtype)}`);
    const offset = state.nested_offset;
    if (typeof offset !== 'number' || !Number.isFinite(offset)) formatError(stateKey, `expected a finite number for nested_offset but found ${preview(offset)}`);
    const nestedBlocks = Math.ceil(blocks / nestedBlocksize);
    nested = {
      absmax: part(lookup, `${prefix}.nested_absmax`, 'f32', [[nestedBlocks]]),
      quant_map: finiteTable(part(lookup, `${prefix}.nested_quant_map`, 'f32', [[256]]), `${prefix}.nested_quant_map`),
      blocksize: nestedBlocksize,
      offset,
    };
  }
  const data = part(lookup, prefix, 'u8', [[half, 1], [half]], ' (only uint8 quant_storage is supported)');
  const absmax = part(lookup, `${prefix}.absmax`, nested ? 'u8' : 'f32', [[blocks]]);
  const quantMap = finiteTable(part(lookup, `${prefix}.quant_map`, 'f32', [[16]]), `${prefix}.quant_map`);
  checkScales(prefix, absmax, quantMap, nested);
  return new QuantizedTensor({
    data,
    absmax,
    quant_map: quantMap,
    nested,
    shape,
    dtype: dtype as QuantSourceDType,
    blocksize,
    quant_type: quantType,
  });
}
