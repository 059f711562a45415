/**
 * Adapters on disk, exactly as Hugging Face PEFT writes them: `adapter_config.json` and
 * `adapter_model.safetensors`, keys like base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
 * (the adapter's name removed), `lora_A` [r, in], `lora_B` [out, r], DoRA's `lora_magnitude_vector`
 * [out], IA3's `ia3_l` ([out, 1], or [1, in] for feed-forward layers), `prompt_embeddings`
 * [tokens, hidden], LayerNorm tuning's `ln_tuning_layers`, and modules_to_save under the original
 * module path.
 * @internal
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../errors';
import { removeFileDurably, writeFileAtomic } from '../io/atomic';
import { checkInsideOutput } from '../io/output-path';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import type { Model } from '../models/model';
import { tensor, Tensor } from '../tensor';
import type { AdapterState, AdapterTensors } from './attach';
import { adapterWeights, modulesToSave } from './attach';
import { normalizeConfig, type PeftConfig } from './config';
import { expertFileTensors, expertParts } from './expert-params';
import { FILE_PREFIX, ia3Vector, loraA, loraB, loraMagnitude, moduleOf, promptEmbeddings } from './names';

export const CONFIG_FILE = 'adapter_config.json';
export const WEIGHTS_FILE = 'adapter_model.safetensors';

function reshaped(t: Tensor, shape: number[]): Tensor {
  return tensor(t.toFloat32Array(), shape);
}

/** The file's tensors for one adapter. */
export function adapterFileTensors(model: Model, state: AdapterState): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const { name, config } = state;
  const weights = adapterWeights(model, state);
  const experts = state.experts ?? [];
  if (experts.length && config.peft_type === 'LORA') Object.assign(out, expertFileTensors(experts, config.r!, name, weights));
  const expertModules = new Set(experts.flatMap((t) => Array.from({ length: t.experts }, (_, e) => expertParts(t, e, name).map((p) => p.module)).flat()));
  for (const module of state.modules) {
    if (expertModules.has(module)) continue;
    const ea = weights.get(`${module}.lora_embedding_A.${name}`);
    if (ea) {
      out[`${FILE_PREFIX}${module}.lora_embedding_A`] = ea;
      out[`${FILE_PREFIX}${module}.lora_embedding_B`] = weights.get(`${module}.lora_embedding_B.${name}`)!;
    }
    const a = weights.get(loraA(module, name));
    if (a) {
      out[`${FILE_PREFIX}${module}.lora_A.weight`] = a;
      out[`${FILE_PREFIX}${module}.lora_B.weight`] = weights.get(loraB(module, name))!;
      const magnitude = weights.get(loraMagnitude(module, name));
      if (magnitude) out[`${FILE_PREFIX}${module}.lora_magnitude_vector`] = magnitude;
    }
    const l = weights.get(ia3Vector(module, name));
    if (l) out[`${FILE_PREFIX}${module}.ia3_l`] = reshaped(l, state.feedforward.has(module) ? [1, l.size] : [l.size, 1]);
  }
  for (const [param, value] of weights) {
    const m = /^((?:model\.layers|transformer\.h|bert\.encoder\.layer)\.\d+\.(?:attn|mlp)_adapter\.adapter_(?:down|up))\.[^.]+\.(weight|bias)$/.exec(param);
    if (m) out[`${FILE_PREFIX}${m[1]}.${m[2]}`] = value;
  }
  const prompt = weights.get(promptEmbeddings(name)) ?? weights.get(`prefix_kv.${name}`);
  if (prompt) out.prompt_embeddings = prompt;
  const saved = new Set(modulesToSave(model, config));
  for (const [param, value] of state.copies) {
    const lnTuned = config.peft_type === 'LN_TUNING' && !saved.has(param);
    const key = lnTuned ? `${moduleOf(param)}.ln_tuning_layers.${param.slice(param.lastIndexOf('.') + 1)}` : param;
    out[FILE_PREFIX + key] = value;
  }
  return out;
}

/** The JSON PEFT writes: every field of the config, with inference_mode true. */
export function configJson(config: PeftConfig, baseModel: string | undefined): string {
  const json: Record<string, unknown> = { ...config, inference_mode: true };
  if (json.base_model_name_or_path === null && baseModel) json.base_model_name_or_path = baseModel;
  const sorted = Object.fromEntries(Object.entries(json).sort(([a], [b]) => a.localeCompare(b)));
  return JSON.stringify(sorted, null, 2) + '\n';
}

/**
 * Writes one adapter's two files into `dir` (created if needed), each atomically. The config goes
 * last, and an old one is removed first: a save cut short leaves a folder without
 * adapter_config.json, which readAdapter refuses, never new weights beside an old config.
 */
export async function writeAdapter(model: Model, state: AdapterState, dir: string): Promise<void> {
  for (const file of [WEIGHTS_FILE, CONFIG_FILE]) checkInsideOutput(dir, path.join(dir, file));
  fs.mkdirSync(dir, { recursive: true });
  const config = { ...state.config } as PeftConfig;
  if (config.peft_type === 'LORA' && !config.target_modules && !config.target_parameters?.length) config.target_modules = ['q_proj', 'v_proj'];
  const tensors = adapterFileTensors(model, state);
  removeFileDurably(path.join(dir, CONFIG_FILE));
  await writeSafetensors(path.join(dir, WEIGHTS_FILE), tensors, { format: 'pt' });
  writeFileAtomic(path.join(dir, CONFIG_FILE), configJson(config, model.nameOrPath));
}

/** An adapter's weights must be finite: a NaN or an infinity would silently turn every output into NaN. */
function checkFinite(t: Tensor, key: string, file: string): void {
  if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16') return;
  const values = t.toFloat32Array();
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new PeftError(`Expected finite weights in ${file} but tensor ${key} holds ${values[i]} at element ${i}`, 'E_NONFINITE');
    }
  }
}

/** Reads an adapter directory: its config (unknown keys warn) and its weights by role. */
export function readAdapter(dir: string, warn?: (message: string) => void): { config: PeftConfig; tensors: AdapterTensors } {
  const configPath = path.join(dir, CONFIG_FILE);
  if (!fs.existsSync(configPath)) throw new PeftError(`Expected an adapter directory with ${CONFIG_FILE} but ${dir} has none`, 'E_IO');
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new PeftError(`${configPath} is not valid JSON: ${(err as Error).message}`, 'E_FORMAT');
  }
  const config = normalizeConfig(json, warn);
  const weightsPath = path.join(dir, WEIGHTS_FILE);
  if (!fs.existsSync(weightsPath)) {
    const pickle = fs.existsSync(path.join(dir, 'adapter_model.bin'));
    throw new PeftError(pickle ? `${dir} holds adapter_model.bin (a pickle), which is not read for safety; convert it to ${WEIGHTS_FILE}` : `Expected ${WEIGHTS_FILE} in ${dir} but found none`, pickle ? 'E_UNSUPPORTED' : 'E_IO');
  }
  const file = readSafetensors(weightsPath);
  const tensors: AdapterTensors = { lora: new Map(), ia3: new Map(), bottleneck: new Map(), copies: new Map() };
  const lora = (m: string) => {
    if (!tensors.lora.has(m)) tensors.lora.set(m, {} as { a: Tensor; b: Tensor });
    return tensors.lora.get(m)!;
  };
  for (const key of file.keys()) {
    const t = file.tensor(key);
    checkFinite(t, key, weightsPath);
    if (key === 'prompt_embeddings') {
      tensors.prompt = t;
      continue;
    }
    if (!key.startsWith(FILE_PREFIX)) throw new PeftError(`Unexpected tensor ${key} in ${weightsPath}: adapter keys start with ${FILE_PREFIX}`, 'E_FORMAT');
    const k = key.slice(FILE_PREFIX.length);
    let m: RegExpExecArray | null;
    if ((m = /^(.+)\.lora_A\.weight$/.exec(k)) || (m = /^(.+)\.lora_embedding_A$/.exec(k))) lora(m[1]).a = t;
    else if ((m = /^(.+)\.lora_embedding_B$/.exec(k))) lora(m[1]).b = t;
    else if ((m = /^(.+)\.lora_B\.weight$/.exec(k))) lora(m[1]).b = t;
    else if ((m = /^(.+)\.lora_magnitude_vector(\.weight)?$/.exec(k))) lora(m[1]).magnitude = t;
    else if ((m = /^(.+)\.ia3_l$/.exec(k))) tensors.ia3.set(m[1], t);
    else if ((m = /^((?:model\.layers|transformer\.h|bert\.encoder\.layer)\.\d+\.(?:attn|mlp)_adapter)\.adapter_(down|up)\.(weight|bias)$/.exec(k))) {
      const site = tensors.bottleneck.get(m[1]) ?? {};
      site[`${m[2]}${m[3] === 'weight' ? 'Weight' : 'Bias'}` as 'downWeight'] = t;
      tensors.bottleneck.set(m[1], site);
    }
    else if ((m = /^(.+)\.(?:ln_tuning_layers|modules_to_save)\.([^.]+)$/.exec(k))) tensors.copies.set(`${m[1]}.${m[2]}`, t);
    else if ((m = /^(.+)\.base_layer\.bias$/.exec(k))) tensors.copies.set(`${m[1]}.bias`, t);
    else tensors.copies.set(k, t);
  }
  for (const [module, w] of tensors.lora) {
    if (!w.a) throw new PeftError(`The adapter has no tensor ${FILE_PREFIX}${module}.lora_A.weight to go with its lora_B`, 'E_FORMAT');
    if (!w.b) throw new PeftError(`The adapter has no tensor ${FILE_PREFIX}${module}.lora_B.weight to go with its lora_A`, 'E_FORMAT');
  }
  return { config, tensors };
}
