/** Field specs that several commands share. */
import type { FieldSpec } from './config';

export const MODEL_FIELD = {
  type: 'string',
  description: 'the model: a Hugging Face directory, a .gguf file or hf:owner/name',
  required: true,
  short: 'm',
  placeholder: 'path',
} as const satisfies FieldSpec;

export const TOKENIZER_FIELD = {
  type: 'string',
  description: "a directory with tokenizer.json to use instead of the model's own tokenizer",
  placeholder: 'dir',
} as const satisfies FieldSpec;

export const ADAPTER_FIELD = {
  type: 'string',
  description: 'a PEFT adapter directory (adapter_config.json + adapter_model.safetensors)',
  placeholder: 'dir',
} as const satisfies FieldSpec;

export const JSON_FIELD = {
  type: 'boolean',
  description: 'print the result as JSON',
  default: false,
} as const satisfies FieldSpec;
