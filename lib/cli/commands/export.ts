/** `peft-native export`: write an adapter or a merged model in another format. */
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { ADAPTER_FIELD, MODEL_FIELD } from '../fields';
import { notBuiltYet } from './not-built';

export const EXPORT_SCHEMA = {
  model: MODEL_FIELD,
  adapter: { ...ADAPTER_FIELD, required: true },
  format: { type: 'string', description: 'what to write', default: 'gguf-lora', choices: ['gguf-lora', 'gguf', 'safetensors'] },
  output: { type: 'string', description: 'the file or directory to write', required: true, short: 'o', placeholder: 'path' },
} as const;

/** The resolved configuration of `peft-native export`. */
export type ExportConfig = ConfigOf<typeof EXPORT_SCHEMA>;

/** Exports an adapter (or the merged model) in the chosen format. */
export async function runExport(config: ExportConfig): Promise<void> {
  void config;
  notBuiltYet('export', 'adapter loading and export from lib/peft');
}

export const exportCommand: CommandSpec<typeof EXPORT_SCHEMA> = defineCommand({
  name: 'export',
  summary: 'export an adapter (llama.cpp GGUF LoRA) or a merged model (GGUF, safetensors)',
  description: 'Writes an adapter as a llama.cpp GGUF LoRA file, or the merged model as GGUF or safetensors.',
  schema: EXPORT_SCHEMA,
  examples: ['peft-native export --model ./base --adapter ./peft-output/adapter --format gguf-lora --output adapter.gguf'],
  run: runExport,
});
