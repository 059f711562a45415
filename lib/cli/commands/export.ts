/** `peft-native export`: write an adapter as a llama.cpp GGUF LoRA file, or the merged model as safetensors. */
import { PeftError } from '../../errors';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { ADAPTER_FIELD, MODEL_FIELD } from '../fields';

export const EXPORT_SCHEMA = {
  model: MODEL_FIELD,
  adapter: { ...ADAPTER_FIELD, required: true },
  format: { type: 'string', description: 'what to write', default: 'gguf-lora', choices: ['gguf-lora', 'gguf', 'safetensors'] },
  output: { type: 'string', description: 'the file (gguf-lora) or directory (safetensors) to write', required: true, short: 'o', placeholder: 'path' },
  dtype: { type: 'string', description: 'dtype of the tensors written', default: 'f32', choices: ['f32', 'bf16', 'f16'] },
} as const;

/** The resolved configuration of `peft-native export`. */
export type ExportConfig = ConfigOf<typeof EXPORT_SCHEMA>;

/** Exports an adapter (or the merged model) in the chosen format. */
export async function runExport(config: ExportConfig): Promise<void> {
  if (config.format === 'gguf') {
    throw new PeftError(
      'Writing a merged model as GGUF is not available: export --format safetensors and convert it with llama.cpp\'s convert_hf_to_gguf.py, or export the adapter as --format gguf-lora',
      'E_UNSUPPORTED',
    );
  }
  // Loaded here, not at the top: --help should not need the native addon.
  const { loadModel } = await import('../../models/model');
  const { loadAdapter } = await import('../../peft/peft-model');
  const { exportGgufLora, exportMerged } = await import('../../peft/export');
  const peft = await loadAdapter(await loadModel(config.model), config.adapter, { warn: (m) => process.stderr.write(`warning: ${m}\n`) });
  const dtype = config.dtype as 'f32' | 'bf16' | 'f16';
  if (config.format === 'gguf-lora') await exportGgufLora(peft, config.output, { dtype });
  else await exportMerged(peft, config.output, { dtype });
  process.stdout.write(`wrote ${config.output} (${config.format}, ${dtype})\n`);
}

export const exportCommand: CommandSpec<typeof EXPORT_SCHEMA> = defineCommand({
  name: 'export',
  summary: 'export an adapter as a llama.cpp GGUF LoRA file, or the merged model as safetensors',
  description:
    'Writes an adapter as a GGUF LoRA file for llama.cpp (--lora) and node-llama-cpp, laid out as convert_lora_to_gguf.py writes it,\n' +
    'or the model with the adapter merged in as a Hugging Face directory (--format safetensors).',
  schema: EXPORT_SCHEMA,
  examples: [
    'peft-native export --model ./base --adapter ./peft-output/adapter --format gguf-lora --output adapter.gguf',
    'peft-native export -m ./base --adapter ./peft-output/adapter --format safetensors -o ./merged --dtype bf16',
  ],
  run: runExport,
});
