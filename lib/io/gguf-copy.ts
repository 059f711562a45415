/**
 * A GGUF file's metadata as typed values the writer takes back, so a file derived from another
 * (re-quantized, merged) keeps its architecture, hyperparameters and vocabulary exactly.
 * @module
 */
import { PeftError } from '../errors';
import type { GgufFile, GgufValue } from './gguf';
import type { GgufMetadataValue, GgufScalarType } from './gguf-writer';

const SCALARS = new Set(['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'u64', 'i64', 'f64']);

function scalar(type: string, value: GgufValue, key: string): GgufMetadataValue {
  if (!SCALARS.has(type)) throw new PeftError(`GGUF metadata ${key} has type ${type}, which cannot be copied`, 'E_UNSUPPORTED');
  return { type, value } as GgufMetadataValue;
}

/** Every metadata entry of `file` except those in `drop`, in file order, with its stored type. */
export function copyGgufMetadata(file: GgufFile, drop: ReadonlySet<string> = new Set()): Record<string, GgufMetadataValue> {
  const out: Record<string, GgufMetadataValue> = {};
  for (const [key, value] of Object.entries(file.metadata)) {
    if (drop.has(key)) continue;
    const type = file.metadataTypes[key];
    const array = /^array<(.+)>$/.exec(type);
    if (!array) {
      out[key] = scalar(type, value, key);
      continue;
    }
    if (!SCALARS.has(array[1])) throw new PeftError(`GGUF metadata ${key} is an ${type}, which cannot be copied`, 'E_UNSUPPORTED');
    out[key] = { type: 'array', itemType: array[1] as GgufScalarType, value: value as (number | bigint | boolean | string)[] };
  }
  return out;
}
