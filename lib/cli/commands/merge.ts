/** `peft-native merge`: fold an adapter into the base weights and save a plain model. */
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { ADAPTER_FIELD, MODEL_FIELD } from '../fields';
import { notBuiltYet } from './not-built';

export const MERGE_SCHEMA = {
  model: MODEL_FIELD,
  adapter: { ...ADAPTER_FIELD, required: true },
  output: { type: 'string', description: 'directory for the merged model (config.json, model.safetensors, tokenizer)', required: true, short: 'o', placeholder: 'dir' },
  dtype: { type: 'string', description: 'dtype of the saved weights', default: 'f32', choices: ['f32', 'bf16', 'f16'] },
} as const;

/** The resolved configuration of `peft-native merge`. */
export type MergeConfig = ConfigOf<typeof MERGE_SCHEMA>;

/** Merges an adapter into its base model and saves the result. */
export async function runMerge(config: MergeConfig): Promise<void> {
  void config;
  notBuiltYet('merge', 'loadAdapter and merge from lib/peft');
}

export const mergeCommand: CommandSpec<typeof MERGE_SCHEMA> = defineCommand({
  name: 'merge',
  summary: 'merge an adapter into the base model and save a standalone model',
  description: 'Adds the adapter\'s update to the base weights (W + scale·BA for LoRA) and saves a Hugging Face model directory.',
  schema: MERGE_SCHEMA,
  examples: ['peft-native merge --model ./base --adapter ./peft-output/adapter --output ./merged'],
  run: runMerge,
});
