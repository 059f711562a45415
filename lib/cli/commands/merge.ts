/** `peft-native merge`: fold an adapter into the base weights and save a plain Hugging Face model. */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { DType } from '../../dtype';
import { PeftError } from '../../errors';
import { writeFileAtomic } from '../../io/atomic';
import type { LlamaConfig } from '../../models/config';
import type { Model } from '../../models/model';
import type { Tensor } from '../../tensor';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { ADAPTER_FIELD, MODEL_FIELD } from '../fields';

export const MERGE_SCHEMA = {
  model: MODEL_FIELD,
  adapter: { ...ADAPTER_FIELD, required: true },
  output: { type: 'string', description: 'directory for the merged model (config.json, model.safetensors, tokenizer)', required: true, short: 'o', placeholder: 'dir' },
  dtype: { type: 'string', description: 'dtype of the saved weights', default: 'f32', choices: ['f32', 'bf16', 'f16'] },
} as const;

/** The resolved configuration of `peft-native merge`. */
export type MergeConfig = ConfigOf<typeof MERGE_SCHEMA>;

/** Tokenizer and generation files copied from a Hugging Face model directory. */
const SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'generation_config.json'];

const TORCH_DTYPE: Record<string, string> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };

/** config.json in transformers' names, for a model that came without one (a GGUF file). */
export function hfConfigJson(c: LlamaConfig): Record<string, unknown> {
  const json: Record<string, unknown> = {
    architectures: [c.modelType === 'qwen2' ? 'Qwen2ForCausalLM' : c.modelType === 'mistral' ? 'MistralForCausalLM' : 'LlamaForCausalLM'],
    model_type: c.modelType,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    hidden_act: 'silu',
    tie_word_embeddings: c.tieWordEmbeddings,
    attention_bias: c.attentionBias,
    mlp_bias: c.mlpBias,
  };
  const s = c.ropeScaling;
  if (s?.type === 'linear') json.rope_scaling = { rope_type: 'linear', factor: s.factor };
  if (s?.type === 'llama3') {
    json.rope_scaling = {
      rope_type: 'llama3',
      factor: s.factor,
      low_freq_factor: s.lowFreqFactor,
      high_freq_factor: s.highFreqFactor,
      original_max_position_embeddings: s.originalMaxPositionEmbeddings,
    };
  }
  if (c.bosTokenId !== undefined) json.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== undefined) json.eos_token_id = c.eosTokenId;
  return json;
}

/**
 * Writes a model as a Hugging Face directory: config.json (the source's own, when it had one),
 * model.safetensors in `dtype`, and the tokenizer files of the source directory. Each file is
 * written atomically.
 */
export async function saveHfModel(model: Model, dir: string, dtype: DType, source: string | undefined): Promise<string[]> {
  const { writeSafetensors } = await import('../../io/safetensors');
  fs.mkdirSync(dir, { recursive: true });
  const sourceDir = source && fs.existsSync(path.join(source, 'config.json')) ? source : undefined;
  const config = sourceDir ? JSON.parse(fs.readFileSync(path.join(sourceDir, 'config.json'), 'utf8')) : hfConfigJson(model.config);
  config.torch_dtype = TORCH_DTYPE[dtype];
  const tensors: Record<string, Tensor> = {};
  for (const name of model.parameterNames()) {
    const t = model.parameterLive(name);
    tensors[name] = t.dtype === dtype ? t : t.to(dtype);
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const written = ['config.json', 'model.safetensors'];
  for (const f of SIDE_FILES) {
    if (sourceDir && fs.existsSync(path.join(sourceDir, f))) {
      writeFileAtomic(path.join(dir, f), fs.readFileSync(path.join(sourceDir, f)));
      written.push(f);
    }
  }
  return written;
}

/** Merges an adapter into its base model and saves the result. */
export async function runMerge(config: MergeConfig): Promise<void> {
  // Loaded here, not at the top: --help should not need the native addon.
  const { loadModel } = await import('../../models/model');
  const { loadAdapter } = await import('../../peft/peft-model');
  const model = await loadModel(config.model);
  // Other architectures store some weights in another layout on disk (GPT-2's Conv1D is [in, out]).
  const architecture: string = model.config.architecture;
  if (architecture !== 'llama') throw new PeftError(`merge saves Llama-family models; ${config.model} is ${architecture}`, 'E_UNSUPPORTED');
  const peft = await loadAdapter(model, config.adapter, { warn: (m) => process.stderr.write(`warning: ${m}\n`) });
  const type = peft.peftConfig[peft.activeAdapter].peft_type;
  if (['PROMPT_TUNING', 'PREFIX_TUNING', 'P_TUNING', 'BOTTLENECK'].includes(type)) {
    throw new PeftError(`${config.adapter} is a ${type} adapter, which adds tokens or layers instead of changing weights: it cannot be merged (use it with --adapter)`, 'E_UNSUPPORTED');
  }
  const merged = peft.mergeAndUnload();
  const source = fs.existsSync(config.model) && fs.statSync(config.model).isDirectory() ? config.model : undefined;
  const files = await saveHfModel(merged, config.output, config.dtype as DType, source);
  process.stdout.write(`merged ${type} adapter ${config.adapter} into ${config.model}\nwrote ${config.output}: ${files.join(', ')}\n`);
  if (!source) process.stdout.write(`note: ${config.model} is not a Hugging Face directory, so no tokenizer files were copied (load the merged model with --tokenizer)\n`);
}

export const mergeCommand: CommandSpec<typeof MERGE_SCHEMA> = defineCommand({
  name: 'merge',
  summary: 'merge an adapter into the base model and save a standalone model',
  description: 'Adds the adapter\'s update to the base weights (W + scale·BA for LoRA) and saves a Hugging Face model directory.',
  schema: MERGE_SCHEMA,
  examples: ['peft-native merge --model ./base --adapter ./peft-output/adapter --output ./merged'],
  run: runMerge,
});
