/**
 * A small reader of JSONL files of {"text": ...} lines, for `peft-native eval`. The data pipeline
 * in lib/data/ will replace it with every format.
 */
import * as fs from 'node:fs';

import { PeftError } from '../errors';

/** The "text" of each line of a JSONL file (blank lines skipped), at most `limit` of them. */
export function readTextJsonl(file: string, limit = Infinity): string[] {
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PeftError(`Could not read the data file ${file}: ${(err as Error).message}`, 'E_IO');
  }
  const texts: string[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length && texts.length < limit; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new PeftError(`${file}:${i + 1} is not JSON (${(err as Error).message}); expected one {"text": "..."} object per line`, 'E_FORMAT');
    }
    const text = (value as { text?: unknown } | null)?.text;
    if (typeof text !== 'string') throw new PeftError(`${file}:${i + 1} has no "text" string; expected one {"text": "..."} object per line`, 'E_FORMAT');
    texts.push(text);
  }
  if (!texts.length) throw new PeftError(`${file} holds no examples; expected one {"text": "..."} object per line`, 'E_FORMAT');
  return texts;
}
