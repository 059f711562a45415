/** `peft-native inspect`: what a model, GGUF file, safetensors file or adapter holds. */
import { formatBytes } from '../../train/format';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { JSON_FIELD } from '../fields';
import type { Inspection } from '../inspect/summarize';

export const INSPECT_SCHEMA = {
  path: { type: 'string', description: 'a model directory, adapter directory, .gguf or .safetensors file', required: true, positional: true },
  tensors: { type: 'boolean', description: 'list every tensor (default: for safetensors files and adapters)' },
  json: JSON_FIELD,
} as const;

/** The resolved configuration of `peft-native inspect`. */
export type InspectConfig = ConfigOf<typeof INSPECT_SCHEMA>;

const KIND: Record<Inspection['kind'], string> = {
  'hf-model': 'Hugging Face model directory',
  gguf: 'GGUF file',
  safetensors: 'safetensors file',
  adapter: 'PEFT adapter directory',
};

const count = (n: number) => n.toLocaleString('en-US');

function rows(pairs: Array<[string, string]>, indent = '  '): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${indent}${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

function show(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The human-readable report. */
export function formatInspection(r: Inspection, listTensors: boolean): string {
  let out = `${r.path}\n`;
  const head: Array<[string, string]> = [['kind', KIND[r.kind]]];
  if (r.ggufVersion !== undefined) head.push(['GGUF version', String(r.ggufVersion)]);
  if (r.architecture) head.push([r.kind === 'adapter' ? 'peft type' : 'architecture', r.modelType ? `${r.architecture} (${r.modelType})` : r.architecture]);
  head.push(['parameters', `${count(r.parameters)} in ${r.tensorCount} tensors`]);
  head.push(['dtypes', Object.entries(r.parametersByDtype).map(([d, n]) => `${d} ${count(n)}`).join(', ')]);
  head.push(['tensor bytes', `${formatBytes(r.bytes)} (${count(r.bytes)})`]);
  head.push(['file size', `${formatBytes(r.fileSize)} (${count(r.fileSize)} bytes in ${r.files.length} file${r.files.length === 1 ? '' : 's'})`]);
  out += rows(head);
  if (r.config && Object.keys(r.config).length) out += `\n${r.kind === 'adapter' ? 'adapter config' : 'config'}:\n${rows(Object.entries(r.config).map(([k, v]) => [k, show(v)]))}`;
  if (r.kind === 'gguf' && r.metadata) {
    const other = Object.entries(r.metadata).filter(([k]) => !r.architecture || !k.startsWith(`${r.architecture}.`));
    out += `\nmetadata:\n${rows(other.map(([k, v]) => [k, show(v)]))}`;
  } else if (r.metadata && Object.keys(r.metadata).length) {
    out += `\nmetadata:\n${rows(Object.entries(r.metadata).map(([k, v]) => [k, show(v)]))}`;
  }
  const modules = Object.entries(r.parametersByModule).sort((a, b) => b[1] - a[1]);
  out += `\nparameters by module type:\n${rows(modules.map(([m, n]) => [m, `${count(n).padStart(count(modules[0][1]).length)}  ${((100 * n) / r.parameters).toFixed(1).padStart(5)}%`]))}`;
  if (listTensors) {
    out += `\ntensors:\n${rows(r.tensors.map((t) => [t.name, `${t.dtype.padEnd(5)} [${t.shape.join(', ')}]`]))}`;
  }
  return out;
}

/** Prints what the path holds. */
export async function runInspect(config: InspectConfig): Promise<void> {
  // Loaded here, not at the top: --help should not need the native addon.
  const { inspectPath } = await import('../inspect/summarize');
  const result = inspectPath(config.path);
  const listTensors = config.tensors ?? (result.kind === 'safetensors' || result.kind === 'adapter');
  if (config.json) {
    // JSON.stringify leaves out undefined fields.
    process.stdout.write(`${JSON.stringify(listTensors ? result : { ...result, tensors: undefined }, null, 2)}\n`);
    return;
  }
  process.stdout.write(formatInspection(result, listTensors));
}

export const inspectCommand: CommandSpec<typeof INSPECT_SCHEMA> = defineCommand({
  name: 'inspect',
  summary: 'summarize a model, GGUF file, safetensors file or adapter',
  description: 'Shows the architecture and config, parameter counts by module type and dtype, file sizes and (for safetensors and adapters) every tensor.',
  schema: INSPECT_SCHEMA,
  examples: ['peft-native inspect ./stories260K-hf', 'peft-native inspect model.gguf --json', 'peft-native inspect ./peft-output/adapter'],
  run: runInspect,
});
