/**
 * Names: adapter names (checked so that one can never write outside a target directory), the
 * native parameter names of adapter weights, and the keys of Hugging Face PEFT's adapter files.
 * @internal
 */
import { PeftError } from '../errors';
import { describe } from '../validate';

export const DEFAULT_ADAPTER = 'default';
export const BASE_ROWS = '__base__';
/** Prefix of every key in an adapter file except prompt embeddings. */
export const FILE_PREFIX = 'base_model.model.';

/** Letters, digits, '_', '-' and '.', not starting with '.', at most 64 characters, not '__base__'. */
export function checkAdapterName(name: unknown, argument = 'adapter name'): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(name) || name === BASE_ROWS) {
    throw new PeftError(
      `Expected an adapter name of letters, digits, "_", "-" and "." (not starting with ".", at most 64 characters, not "${BASE_ROWS}") for ${argument} but received ${describe(name)}`,
      'E_ARGUMENT',
    );
  }
  return name;
}

export const loraA = (module: string, adapter: string) => `${module}.lora_A.${adapter}.weight`;
export const loraB = (module: string, adapter: string) => `${module}.lora_B.${adapter}.weight`;
export const loraMagnitude = (module: string, adapter: string) => `${module}.lora_magnitude_vector.${adapter}.weight`;
export const ia3Vector = (module: string, adapter: string) => `${module}.ia3_l.${adapter}`;
export const promptEmbeddings = (adapter: string) => `prompt_embeddings.${adapter}`;

/** Whether a native parameter name is one of adapter `adapter`'s weights (the names above, and bottleneck adapters'). */
export function isAdapterParameter(param: string, adapter: string): boolean {
  const a = `.${adapter}`;
  return param === `prompt_embeddings${a}` || param === `prefix_kv${a}` ||
    ['.lora_A', '.lora_B', '.lora_magnitude_vector'].some((k) => param.endsWith(`${k}${a}.weight`)) ||
    ['.lora_embedding_A', '.lora_embedding_B', '.ia3_l'].some((k) => param.endsWith(`${k}${a}`)) ||
    param.includes(`.adapter_down${a}.`) || param.includes(`.adapter_up${a}.`);
}

/** The module name of a parameter name: model.norm.weight → model.norm. */
export const moduleOf = (param: string) => param.slice(0, param.lastIndexOf('.'));
