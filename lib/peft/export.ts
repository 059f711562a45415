/**
 * Exporting what was trained:
 * - {@link exportMerged}: the model with its active adapter folded in, as a Hugging Face model
 *   directory (config.json, model.safetensors, tokenizer files) that transformers and loadModel read.
 * - {@link exportGgufLora}: a LoRA adapter of a Llama-family model as the GGUF LoRA file llama.cpp's
 *   convert_lora_to_gguf.py writes, for llama.cpp (`--lora`) and node-llama-cpp (`lora` option).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError, withCallSite } from '../errors';
import { removeFileDurably, writeFileAtomic } from '../io/atomic';
import { checkInsideOutput } from '../io/output-path';
import { writeGguf, type GgufMetadataValue } from '../io/gguf-writer';
import { writeSafetensors } from '../io/safetensors';
import { hfConfigJson, TORCH_DTYPES } from '../models/hf-config';
import { Model } from '../models/model';
import { TOKENIZER_FILES, writeModelFiles } from '../models/model-files';
import { tensor, Tensor } from '../tensor';
import { fail } from '../validate';
import { modulesToSave } from './attach';
import type { LoraConfig } from './config';
import { embeddingsOf, loraSites } from './lora-factors';
import { ia3Vector } from './names';
import { PeftModel } from './peft-model';
import { patternValue } from './targets';

/** Options of {@link exportMerged}. */
export interface ExportMergedOptions {
  /** dtype of the saved weights (default 'f32'); config.json's torch_dtype says the same. */
  dtype?: 'f32' | 'bf16' | 'f16';
}

/** Options of {@link exportGgufLora}. */
export interface ExportGgufLoraOptions {
  /** The adapter to export (default: the active one). */
  adapterName?: string;
  /** Tensor type in the file (default 'f32', as convert_lora_to_gguf.py). */
  dtype?: 'f32' | 'f16' | 'bf16';
}

function dtypeOption(value: unknown, allowed: readonly string[]): string {
  const dtype = value ?? 'f32';
  if (typeof dtype !== 'string' || !allowed.includes(dtype)) fail('options.dtype', `one of ${allowed.map((d) => `"${d}"`).join(', ')}`, dtype, 'E_DTYPE');
  return dtype;
}

const GPT2_CONV1D = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/** t: [rows, cols] → f32 [cols, rows] */
function transposed(t: Tensor): Tensor {
  const [rows, cols] = t.shape;
  return tensor(transpose(t.toFloat32Array(), rows, cols), [cols, rows]);
}

/** Deep copy of a float tensor in its own dtype (f32 holds every bf16 and f16 value exactly). */
function snapshot(t: Tensor): Tensor {
  if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16') {
    throw new PeftError(`Cannot fold an adapter into a ${t.dtype} weight and restore it afterwards`, 'E_UNSUPPORTED');
  }
  return tensor(t.toFloat32Array(), t.shape, t.dtype);
}

/**
 * Folds the active adapter into the weights (through the native merge) for the duration of `fn`,
 * then takes it out again and puts back the exact weights it changed.
 * @internal
 */
export async function withActiveMerged<T>(peft: PeftModel, fn: () => Promise<T>): Promise<T> {
  const name = peft.activeAdapter;
  const config = peft.peftConfig[name];
  if (config.peft_type === 'BITFIT' || config.peft_type === 'LN_TUNING') return fn(); // its trained copies are the live parameters
  if (config.peft_type !== 'LORA' && config.peft_type !== 'IA3') {
    throw new PeftError(`A ${config.peft_type} adapter cannot be folded into the weights; export it with saveAdapter`, 'E_UNSUPPORTED');
  }
  if (peft.mergedAdapters().includes(name)) return fn();
  const model = peft.base;
  const adapterParams = new Set(model.nativeModel.parameters().map((p) => p.name));
  const trainedCopies = new Set(modulesToSave(model, config));
  const changed: string[] = [];
  const baseNames = new Set(model.parameterNames());
  for (const { module, a, embedding } of loraSites(model, name)) {
    if (!adapterParams.has(a) && !adapterParams.has(ia3Vector(module, name))) continue;
    if ((module === 'lm_head' || embedding) && model.config.tieWordEmbeddings) {
      // Folding it into the one tied matrix would change both the embeddings and the head, which the adapted model does not.
      throw new PeftError(`Adapter ${name} changes ${module}, whose weight is tied to ${embedding ? 'lm_head' : 'the embeddings'}; it cannot be merged into one tied matrix`, 'E_UNSUPPORTED');
    }
    for (const param of [`${module}.weight`, `${module}.bias`]) if (baseNames.has(param) && !trainedCopies.has(param)) changed.push(param);
  }
  // A 4-bit weight is merged dense (requantize: false) and unmerging restores its codes exactly.
  const quantized = new Set(model.quantizedWeightNames());
  const saved = new Map(changed.filter((p) => !quantized.has(p)).map((p) => [p, snapshot(model.parameterLive(p))]));
  model.nativeModel.mergeAdapter(name, { requantize: false });
  try {
    return await fn();
  } finally {
    model.nativeModel.unmergeAdapter(name);
    for (const [param, value] of saved) model.replaceParameter(param, value);
  }
}

/**
 * Saves a model as a Hugging Face model directory: `model.safetensors` (Hugging Face tensor names,
 * in `options.dtype`), `config.json` (the source's, or one written from the model's config for GGUF
 * models) and the tokenizer files (copied from the source directory, or built from a GGUF file's
 * vocabulary). Given a PeftModel, the active adapter (LoRA, DoRA, IA3; BitFit and LayerNorm tuning
 * too) is folded into the weights, as mergeAndUnload would, but the PeftModel is left as it was.
 * Each file is written atomically, config.json last.
 * @example await exportMerged(peft, 'out/merged', { dtype: 'bf16' }); const m = await loadModel('out/merged');
 */
export function exportMerged(source: PeftModel | Model, dir: string, options: ExportMergedOptions = {}): Promise<void> {
  return withCallSite(async () => {
    if (!(source instanceof PeftModel) && !(source instanceof Model)) fail('source', 'a PeftModel or a Model', source);
    if (typeof dir !== 'string' || !dir) fail('dir', 'a directory path', dir);
    const dtype = dtypeOption(options.dtype, ['f32', 'bf16', 'f16']) as keyof typeof TORCH_DTYPES;
    const model = source instanceof PeftModel ? source.base : source;
    for (const file of ['model.safetensors', 'config.json', ...TOKENIZER_FILES]) checkInsideOutput(dir, path.join(dir, file));
    fs.mkdirSync(dir, { recursive: true });
    if (fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) {
      throw new PeftError(`${dir} holds a sharded checkpoint (model.safetensors.index.json) that would shadow the exported model.safetensors`, 'E_IO');
    }
    // config.json goes last and an old one first: a save cut short leaves a folder loadModel refuses.
    removeFileDurably(path.join(dir, 'config.json'));
    const write = async () => {
      const live = new Map(model.nativeModel.parameters().map((p) => [p.name, p.tensor]));
      // A weight that is 4-bit now (the adapter did not touch it) is written dequantized;
      // saveQuantizedModel keeps the 4-bit form.
      const quantizedNow = new Set(model.quantizedWeightNames());
      const tensors: Record<string, Tensor> = {};
      for (const name of model.parameterNames()) {
        let t = quantizedNow.has(name) ? model.parameter(name) : new Tensor(live.get(name)!);
        // GPT-2 checkpoints keep Conv1D weights as [in, out]; the model holds them as [out, in].
        if (model.config.architecture === 'gpt2' && GPT2_CONV1D.test(name)) t = transposed(t);
        tensors[name] = t.dtype === dtype ? t : t.to(dtype);
      }
      await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    };
    // The weights change while the adapter is folded in: no other call on the model meanwhile.
    await model.lock.run('exportMerged()', () => (source instanceof PeftModel ? withActiveMerged(source, write) : write()));
    const sourceConfig = await writeModelFiles(model, dir);
    const config = sourceConfig ? { ...sourceConfig, torch_dtype: TORCH_DTYPES[dtype] } : hfConfigJson(model.config, dtype);
    writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  });
}

// --- GGUF LoRA ---

/** llama.cpp's tensor names of the Hugging Face linear layers. */
const GGUF_NAMES: Record<string, string> = {
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** `blk.N.attn_q.weight` for model.layers.N.self_attn.q_proj, `output.weight` for lm_head, `token_embd.weight` for the embeddings. */
export function ggufWeightName(module: string): string | undefined {
  if (module === 'lm_head') return 'output.weight';
  if (module === 'model.embed_tokens') return 'token_embd.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(module);
  return m && GGUF_NAMES[m[2]] ? `blk.${m[1]}.${GGUF_NAMES[m[2]]}.weight` : undefined;
}

/** x: [rows, cols] → [cols, rows] */
function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j];
  return out;
}

/**
 * llama.cpp's rotary row order (its converter's permute): within each head of D rows, Hugging Face
 * row j·D/2 + i moves to row 2i + j. values: [heads · D, cols] row-major.
 */
export function permuteRotary(values: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const D = rows / heads;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < D / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const from = h * D + j * (D / 2) + i;
        const to = h * D + 2 * i + j;
        out.set(values.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/**
 * Writes a LoRA adapter of a Llama-family model (llama, mistral, qwen2, qwen3) as a GGUF LoRA file, laid out
 * as llama.cpp's convert_lora_to_gguf.py writes it: `general.type = adapter`, `adapter.type = lora`,
 * `adapter.lora.alpha`, tensors `blk.N.attn_q.weight.lora_a` ([r, in]) and `.lora_b` ([out, r]),
 * the q/k lora_b rows in llama.cpp's rotary order; a LoRA on the embeddings becomes
 * `token_embd.weight.lora_a` [vocab, r] / `.lora_b` [hidden, r]. llama.cpp scales every pair by alpha / r; where
 * this adapter scales otherwise (rslora, rank or alpha patterns) the factor is folded into lora_b.
 * @example await exportGgufLora(peft, 'out/adapter.gguf'); // llama-cli -m model.gguf --lora out/adapter.gguf
 */
export function exportGgufLora(peft: PeftModel, file: string, options: ExportGgufLoraOptions = {}): Promise<void> {
  return withCallSite(async () => {
    if (!(peft instanceof PeftModel)) fail('peft', 'a PeftModel', peft);
    if (typeof file !== 'string' || !file) fail('file', 'a file path', file);
    const dtype = dtypeOption(options.dtype, ['f32', 'f16', 'bf16']) as 'f32' | 'f16' | 'bf16';
    const name = options.adapterName ?? peft.activeAdapter;
    const config = peft.peftConfig[name] as LoraConfig | undefined;
    if (!config) fail('options.adapterName', `the name of an adapter of this model (${peft.adapterNames().join(', ')})`, name);
    if (config.peft_type !== 'LORA') throw new PeftError(`A GGUF LoRA file holds LoRA adapters, but ${name} is ${config.peft_type}`, 'E_UNSUPPORTED');
    if (config.use_dora) throw new PeftError(`llama.cpp's LoRA files have no DoRA magnitude vectors (adapter ${name}); merge it with exportMerged instead`, 'E_UNSUPPORTED');
    if (config.modules_to_save?.length || config.bias !== 'none') {
      throw new PeftError(`llama.cpp's LoRA files hold only lora_a / lora_b pairs, but adapter ${name} also trains ${config.modules_to_save?.length ? 'modules_to_save' : 'biases'}`, 'E_UNSUPPORTED');
    }
    const model = peft.base;
    if (model.config.architecture !== 'llama') {
      throw new PeftError(`GGUF LoRA export is for Llama-family models (llama, mistral, qwen2, qwen3), not ${model.config.architecture}`, 'E_UNSUPPORTED');
    }
    // Qwen2 / Qwen3 GGUFs keep their own architecture name (and Hugging Face's rotate-half rows).
    const arch = model.config.modelType === 'qwen2' || model.config.modelType === 'qwen3' ? model.config.modelType : 'llama';
    const params = new Map(model.nativeModel.parameters().map((p) => [p.name, p.tensor]));
    const alpha = config.lora_alpha!;
    const tensors: Record<string, Tensor> = {};
    for (const site of loraSites(model, name)) {
      const { module, inFeatures, outFeatures } = site;
      const a = params.get(site.a);
      if (!a) continue;
      const target = ggufWeightName(module);
      if (!target) throw new PeftError(`${module} has no llama.cpp tensor name, so its LoRA cannot go into a GGUF file`, 'E_UNSUPPORTED');
      if ((module === 'lm_head' || site.embedding) && model.config.tieWordEmbeddings) {
        // llama.cpp looks adapters up by tensor name, and a tied head is token_embd.weight too.
        throw new PeftError(`A LoRA on ${module} needs separate token_embd.weight and output.weight in the base GGUF, but this model ties them`, 'E_UNSUPPORTED');
      }
      const r = new Tensor(a).shape[0];
      let b = new Tensor(params.get(site.b)!).toFloat32Array();
      const moduleAlpha = patternValue(module, config.alpha_pattern ?? {}, alpha);
      const scaling = config.use_rslora ? moduleAlpha / Math.sqrt(r) : moduleAlpha / r;
      const fold = (scaling * r) / alpha; // llama.cpp applies alpha / r
      if (fold !== 1) b = b.map((v) => v * fold);
      // The base q/k weights in a llama GGUF have their rows permuted; B's rows must follow them.
      if (arch === 'llama' && module.endsWith('.q_proj')) b = permuteRotary(b, outFeatures, r, model.config.numHeads);
      if (arch === 'llama' && module.endsWith('.k_proj')) b = permuteRotary(b, outFeatures, r, model.config.numKvHeads);
      // The converter transposes token_embd's lora_a to [vocab, r]: llama.cpp gathers its rows by token.
      const aValues = new Tensor(a).toFloat32Array();
      tensors[`${target}.lora_a`] = site.embedding ? tensor(transpose(aValues, r, inFeatures), [inFeatures, r], dtype) : tensor(aValues, [r, inFeatures], dtype);
      tensors[`${target}.lora_b`] = tensor(b, [outFeatures, r], dtype);
    }
    if (!Object.keys(tensors).length) throw new PeftError(`Adapter ${name} has no LoRA weights to export`, 'E_CONFIG');
    const metadata: Record<string, GgufMetadataValue> = {
      'general.architecture': { type: 'string', value: arch },
      'general.type': { type: 'string', value: 'adapter' },
      'general.name': { type: 'string', value: path.basename(file).replace(/\.gguf$/, '') },
      'general.file_type': { type: 'u32', value: dtype === 'f32' ? 0 : dtype === 'f16' ? 1 : 32 },
      'general.quantization_version': { type: 'u32', value: 2 },
      'adapter.type': { type: 'string', value: 'lora' },
      'adapter.lora.alpha': { type: 'f32', value: alpha },
    };
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    writeGguf(file, metadata, tensors);
  });
}
