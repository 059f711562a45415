/**
 * What `peft-native inspect` reports about a file or directory: a Hugging Face model directory, a
 * GGUF file, a safetensors file or a PEFT adapter directory. Only headers and small JSON files are
 * read; tensor data stays on disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../../errors';
import { readGguf, type GgufValue } from '../../io/gguf';
import { readSafetensors, readSafetensorsModel, type SafetensorsSource } from '../../io/safetensors';

/** One tensor's row. */
export interface TensorRow {
  name: string;
  shape: number[];
  dtype: string;
  parameters: number;
  bytes: number;
}

/** What was found. */
export interface Inspection {
  kind: 'hf-model' | 'gguf' | 'safetensors' | 'adapter';
  path: string;
  /** Files the weights are in, and their total size in bytes. */
  files: string[];
  fileSize: number;
  /** config.json's architectures[0] / GGUF general.architecture / the adapter's peft_type. */
  architecture?: string;
  modelType?: string;
  /** config.json, adapter_config.json, or the GGUF's `<arch>.*` keys. */
  config?: Record<string, unknown>;
  /** GGUF metadata (long arrays summarized) or safetensors `__metadata__`. */
  metadata?: Record<string, unknown>;
  ggufVersion?: number;
  tensorCount: number;
  parameters: number;
  bytes: number;
  /** Parameters per module type (q_proj, embed_tokens, ... or q_proj.lora_A for adapters). */
  parametersByModule: Record<string, number>;
  /** Parameters per stored dtype. */
  parametersByDtype: Record<string, number>;
  tensors: TensorRow[];
}

/** Bytes per element of safetensors dtypes. */
const SAFETENSORS_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8,
};

/**
 * The module type of a tensor name: the name without its last part (weight, bias), keeping `depth`
 * non-numeric parts from the end: model.layers.0.self_attn.q_proj.weight → q_proj (depth 1);
 * ...q_proj.lora_A.weight → q_proj.lora_A (depth 2).
 */
export function moduleType(name: string, depth = 1): string {
  const parts = name.split('.');
  const owner = parts.length > 1 && /^(weight|bias)$/.test(parts[parts.length - 1]) ? parts.slice(0, -1) : parts;
  const named = owner.filter((p) => !/^\d+$/.test(p));
  return named.slice(-depth).join('.') || name;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function fileSize(file: string): number {
  return fs.statSync(file).size;
}

function readJsonObject(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new PeftError(`Could not read ${file}: ${(err as Error).message}`, err instanceof SyntaxError ? 'E_FORMAT' : 'E_IO');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PeftError(`${file} is not a JSON object`, 'E_FORMAT');
  return value as Record<string, unknown>;
}

function totals(kind: Inspection['kind'], file: string, files: string[], tensors: TensorRow[], depth: number): Inspection {
  const byModule: Record<string, number> = {};
  const byDtype: Record<string, number> = {};
  for (const t of tensors) {
    const m = moduleType(t.name, depth);
    byModule[m] = (byModule[m] ?? 0) + t.parameters;
    byDtype[t.dtype] = (byDtype[t.dtype] ?? 0) + t.parameters;
  }
  return {
    kind,
    path: file,
    files,
    fileSize: files.reduce((a, f) => a + fileSize(f), 0),
    tensorCount: tensors.length,
    parameters: tensors.reduce((a, t) => a + t.parameters, 0),
    bytes: tensors.reduce((a, t) => a + t.bytes, 0),
    parametersByModule: byModule,
    parametersByDtype: byDtype,
    tensors,
  };
}

function safetensorsRows(source: SafetensorsSource): TensorRow[] {
  return source.keys().map((name) => {
    const info = source.info(name);
    const parameters = numel(info.shape);
    return { name, shape: [...info.shape], dtype: info.dtype, parameters, bytes: parameters * (SAFETENSORS_BYTES[info.dtype] ?? NaN) };
  });
}

function weightFiles(source: SafetensorsSource): string[] {
  return [...new Set(source.keys().map((k) => source.info(k).file))];
}

/** The shortest decimal that reads back as the same float32 (1e-5, not 0.000009999999747378752). */
function shortestF32(value: number): number {
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return candidate;
  }
  return value;
}

/** A GGUF metadata value for display: long arrays become a count, bigints strings, f32 short. */
function summarizeValue(value: GgufValue, type: string): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && /f32/.test(type)) return shortestF32(value);
  if (Array.isArray(value)) return value.length > 16 ? `[${type}, ${value.length} items]` : value.map((v) => summarizeValue(v, type));
  if (typeof value === 'string' && value.length > 200) return `${value.slice(0, 200)}… (${value.length} characters)`;
  return value;
}

function inspectGguf(file: string): Inspection {
  const gguf = readGguf(file);
  try {
    const tensors = gguf.tensorInfos.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.type, parameters: numel(t.shape), bytes: t.nbytes }));
    const result = totals('gguf', file, [file], tensors, 1);
    const arch = gguf.metadata['general.architecture'];
    result.architecture = typeof arch === 'string' ? arch : undefined;
    result.ggufVersion = gguf.version;
    result.metadata = Object.fromEntries(Object.entries(gguf.metadata).map(([k, v]) => [k, summarizeValue(v, gguf.metadataTypes[k])]));
    if (result.architecture) {
      const prefix = `${result.architecture}.`;
      result.config = Object.fromEntries(Object.entries(result.metadata).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    }
    return result;
  } finally {
    gguf.dispose();
  }
}

function inspectModelDir(dir: string): Inspection {
  const config = readJsonObject(path.join(dir, 'config.json'));
  const source = readSafetensorsModel(dir);
  const result = totals('hf-model', dir, weightFiles(source), safetensorsRows(source), 1);
  const archs = config.architectures;
  result.architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : undefined;
  result.modelType = typeof config.model_type === 'string' ? config.model_type : undefined;
  result.config = config;
  return result;
}

function inspectAdapterDir(dir: string): Inspection {
  const config = readJsonObject(path.join(dir, 'adapter_config.json'));
  const weights = path.join(dir, 'adapter_model.safetensors');
  if (!fs.existsSync(weights)) {
    const pickle = fs.existsSync(path.join(dir, 'adapter_model.bin'));
    throw new PeftError(
      pickle
        ? `${dir} holds adapter_model.bin (a PyTorch pickle), which is not read; save the adapter with safe_serialization=True`
        : `Expected adapter_model.safetensors in ${dir} beside adapter_config.json but found none`,
      pickle ? 'E_UNSUPPORTED' : 'E_IO',
    );
  }
  const file = readSafetensors(weights);
  const result = totals('adapter', dir, [weights], safetensorsRows(file), 2);
  result.architecture = typeof config.peft_type === 'string' ? config.peft_type : undefined;
  result.config = config;
  result.metadata = file.metadata;
  return result;
}

function inspectSafetensorsFile(file: string): Inspection {
  const source = readSafetensors(file);
  const result = totals('safetensors', file, [file], safetensorsRows(source), 1);
  result.metadata = source.metadata;
  return result;
}

/** Works out what `location` is and summarizes it. */
export function inspectPath(location: string): Inspection {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(location);
  } catch {
    throw new PeftError(`Could not find ${location}`, 'E_IO');
  }
  if (stat.isDirectory()) {
    if (fs.existsSync(path.join(location, 'adapter_config.json'))) return inspectAdapterDir(location);
    if (fs.existsSync(path.join(location, 'config.json'))) return inspectModelDir(location);
    throw new PeftError(`${location} has neither config.json (a model) nor adapter_config.json (an adapter)`, 'E_FORMAT');
  }
  const fd = fs.openSync(location, 'r');
  const magic = Buffer.alloc(4);
  fs.readSync(fd, magic, 0, 4, 0);
  fs.closeSync(fd);
  if (magic.toString('latin1') === 'GGUF') return inspectGguf(location);
  if (location.endsWith('.safetensors')) return inspectSafetensorsFile(location);
  throw new PeftError(`${location} is neither a GGUF file nor a .safetensors file`, 'E_FORMAT');
}
