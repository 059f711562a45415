/**
 * `peft-native export`: write an adapter as a llama.cpp GGUF LoRA file, or the merged model as a
 * GGUF file (any llama.cpp file type) or a Hugging Face safetensors directory.
 */
import { GGUF_FILE_TYPES } from '../../io/gguf-quant-mix';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { ADAPTER_FIELD, MODEL_FIELD } from '../fields';

export const EXPORT_SCHEMA = {
  model: MODEL_FIELD,
  adapter: { ...ADAPTER_FIELD, required: true },
  format: { type: 'string', description: 'what to write', default: 'gguf-lora', choices: ['gguf-lora', 'gguf', 'safetensors'] },
  output: { type: 'string', description: 'the file (gguf-lora, gguf) or directory (safetensors) to write', required: true, short: 'o', placeholder: 'path' },
  dtype: { type: 'string', description: 'dtype of the tensors written (gguf-lora, safetensors)', default: 'f32', choices: ['f32', 'bf16', 'f16'] },
  quant: {
    type: 'string',
    description: 'llama.cpp file type of --format gguf, as llama-quantize makes it (the model must come from a GGUF file)',
    default: 'Q4_K_M',
    choices: Object.keys(GGUF_FILE_TYPES),
  },
} as const;

/** The resolved configuration of `peft-native export`. */
export type ExportConfig = ConfigOf<typeof EXPORT_SCHEMA>;

/** Exports an adapter (or the merged model) in the chosen format. */
export async function runExport(config: ExportConfig): Promise<void> {
  // Loaded here, not at the top: --help should not need the native addon.
  const { loadModel } = await import('../../models/model');
  const { loadAdapter } = await import('../../peft/peft-model');
  const { exportGgufLora, exportMerged } = await import('../../peft/export');
  const { exportGguf } = await import('../../peft/export-gguf');
  const peft = await loadAdapter(await loadModel(config.model), config.adapter, { warn: (m) => process.stderr.write(`warning: ${m}\n`) });
  const dtype = config.dtype as 'f32' | 'bf16' | 'f16';
  if (config.format === 'gguf') {
    await exportGguf(peft, config.output, { type: config.quant as keyof typeof GGUF_FILE_TYPES });
    process.stdout.write(`wrote ${config.output} (gguf, ${config.quant})\n`);
    return;
  }
  if (config.format === 'gguf-lora') await exportGgufLora(peft, config.output, { dtype });
  else await exportMerged(peft, config.output, { dtype });
  process.stdout.write(`wrote ${config.output} (${config.format}, ${dtype})\n`);
}

export const exportCommand: CommandSpec<typeof EXPORT_SCHEMA> = defineCommand({
  name: 'export',
  summary: 'export an adapter as a llama.cpp GGUF LoRA file, or the merged model as GGUF or safetensors',
  description:
    'Writes an adapter as a GGUF LoRA file for llama.cpp (--lora) and node-llama-cpp, laid out as convert_lora_to_gguf.py writes it;\n' +
    'or the model with the adapter merged in as a GGUF file of a llama.cpp file type (--format gguf --quant Q4_K_M: what\n' +
    'llama-quantize makes, tensor for tensor; the model must come from a GGUF file), or as a Hugging Face directory (--format safetensors).',
  schema: EXPORT_SCHEMA,
  examples: [
    'peft-native export --model ./base --adapter ./peft-output/adapter --format gguf-lora --output adapter.gguf',
    'peft-native export -m model-Q4_K_M.gguf --adapter ./peft-output/adapter --format gguf --quant Q4_K_M -o tuned-Q4_K_M.gguf',
    'peft-native export -m ./base --adapter ./peft-output/adapter --format safetensors -o ./merged --dtype bf16',
  ],
  run: runExport,
});
