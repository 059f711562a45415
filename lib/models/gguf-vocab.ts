/** Reading the `tokenizer.ggml.*` metadata of a GGUF file, with E_FORMAT for values of the wrong type. */
import { PeftError } from '../errors';

/** llama.cpp's token types (llama_token_type). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

function wrongType(key: string, expected: string, value: unknown): never {
  const received = Array.isArray(value) ? 'an array holding other values' : typeof value;
  throw new PeftError(`Expected ${expected} for ${key} in the GGUF metadata but received ${received}`, 'E_FORMAT');
}

/** An array metadata value whose elements all have `elementType`. */
export function list<T extends string | number>(metadata: Record<string, unknown>, key: string, elementType: 'string' | 'number'): T[] {
  const value = metadata[key];
  if (!Array.isArray(value) || !value.every((v) => typeof v === elementType)) wrongType(key, `an array of ${elementType}s`, value);
  return value as T[];
}

/** An integer metadata value (bigints converted), or undefined when absent or not an integer. */
export function tokenId(metadata: Record<string, unknown>, key: string): number | undefined {
  const v = metadata[key];
  const n = typeof v === 'bigint' ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) ? n : undefined;
}

/** The token string of the id stored under `key`, or undefined when absent or out of range. */
export function tokenAt(metadata: Record<string, unknown>, key: string, tokens: readonly string[]): string | undefined {
  const id = tokenId(metadata, key);
  return id === undefined || id < 0 || id >= tokens.length ? undefined : tokens[id];
}

/** A boolean metadata value, or undefined. */
export function flag(metadata: Record<string, unknown>, key: string): boolean | undefined {
  const v = metadata[key];
  return typeof v === 'boolean' ? v : undefined;
}
