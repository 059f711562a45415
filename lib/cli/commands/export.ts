/** `peft-native export`: write an adapter or a merged model in another format. */
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { ADAPTER_FIELD, MODEL_FIELD } from '../fields';

export const EXPORT_SCHEMA = {
  model: MODEL_FIELD,
  adapter: { ...ADAPTER_FIELD, required: true },
  format: {
    type: 'string',
    description: 'gguf-lora: the adapter as a llama.cpp LoRA file; safetensors: the merged model as a Hugging Face directory',
    default: 'gguf-lora',
    choices: ['gguf-lora', 'safetensors'],
  },
  output: { type: 'string', description: 'the file or directory to write', required: true, short: 'o', placeholder: 'path' },
} as const;

/** The resolved configuration of `peft-native export`. */
export type ExportConfig = ConfigOf<typeof EXPORT_SCHEMA>;

/** Exports an adapter (or the merged model) in the chosen format. */
export async function runExport(config: ExportConfig): Promise<void> {
  const { loadModel } = await import('../../models/model');
  const { loadAdapter } = await import('../../peft/peft-model');
  const { exportGgufLora, exportMerged } = await import('../../peft/export');
  const model = await loadModel(config.model);
  const peft = await loadAdapter(model, config.adapter, { warn: (m) => process.stderr.write(`warning: ${m}\n`) });
  if (config.format === 'gguf-lora') await exportGgufLora(peft, config.output);
  else await exportMerged(peft, config.output);
  process.stdout.write(`wrote ${config.output}\n`);
}

export const exportCommand: CommandSpec<typeof EXPORT_SCHEMA> = defineCommand({
  name: 'export',
  summary: 'export an adapter (llama.cpp GGUF LoRA) or the merged model (Hugging Face safetensors directory)',
  description: 'Writes an adapter as a llama.cpp GGUF LoRA file, or the merged model as a Hugging Face directory.',
  schema: EXPORT_SCHEMA,
  examples: ['peft-native export --model ./base --adapter ./peft-output/adapter --format gguf-lora --output adapter.gguf'],
  run: runExport,
});
