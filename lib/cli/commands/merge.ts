/** `peft-native merge`: fold an adapter into the base weights and save a plain Hugging Face model. */
import * as fs from 'node:fs';

import { PeftError } from '../../errors';
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

/** Adapter types that add tokens or layers rather than change weights. */
const UNMERGEABLE = ['PROMPT_TUNING', 'PREFIX_TUNING', 'P_TUNING', 'BOTTLENECK'];

/** Merges an adapter into its base model and saves the result with exportMerged. */
export async function runMerge(config: MergeConfig): Promise<void> {
  // Loaded here, not at the top: --help should not need the native addon.
  const { loadModel } = await import('../../models/model');
  const { loadAdapter } = await import('../../peft/peft-model');
  const { exportMerged } = await import('../../peft/export');
  const model = await loadModel(config.model);
  const peft = await loadAdapter(model, config.adapter, { warn: (m) => process.stderr.write(`warning: ${m}\n`) });
  const type = peft.peftConfig[peft.activeAdapter].peft_type;
  if (UNMERGEABLE.includes(type)) {
    throw new PeftError(`${config.adapter} is a ${type} adapter, which adds tokens or layers instead of changing weights: it cannot be merged (use it with --adapter)`, 'E_UNSUPPORTED');
  }
  await exportMerged(peft, config.output, { dtype: config.dtype as 'f32' | 'bf16' | 'f16' });
  process.stdout.write(`merged ${type} adapter ${config.adapter} into ${config.model}\nwrote ${config.output}: ${fs.readdirSync(config.output).sort().join(', ')}\n`);
}

export const mergeCommand: CommandSpec<typeof MERGE_SCHEMA> = defineCommand({
  name: 'merge',
  summary: 'merge an adapter into the base model and save a standalone model',
  description: 'Adds the adapter\'s update to the base weights (W + scale·BA for LoRA) and saves a Hugging Face model directory.',
  schema: MERGE_SCHEMA,
  examples: ['peft-native merge --model ./base --adapter ./peft-output/adapter --output ./merged'],
  run: runMerge,
});
