/** Reads JSON Lines line by line (files of hundreds of MB never sit in memory as one string). */
import * as fs from 'node:fs';
import * as readline from 'node:readline';

import { PeftError } from '../errors';
import type { RecordSource } from './types';

/** One parsed line and where it was. */
export interface SourcedValue {
  value: unknown;
  source: RecordSource;
}

/** The name used for records passed in memory. */
export const IN_MEMORY = '<records>';

async function checkReadable(file: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
    await fs.promises.access(file, fs.constants.R_OK);
  } catch (err) {
    throw new PeftError(`Could not read the data file ${file}: ${(err as Error).message}`, 'E_IO');
  }
  if (!stat.isFile()) throw new PeftError(`Expected a JSONL file for the data file but ${file} is not a file`, 'E_IO');
}

/** The values of a JSONL file, one per non-blank line; bad JSON is an E_FORMAT naming the file and line. */
export async function* readJsonl(file: string): AsyncGenerator<SourcedValue> {
  await checkReadable(file);
  const stream = fs.createReadStream(file, { encoding: 'utf8' });
  // readline's iterator does not always surface stream errors, so they are caught here and rethrown below.
  let streamError: Error | undefined;
  stream.on('error', (err) => (streamError = err));
  const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const raw of lines) {
      line++;
      // A byte-order mark before the first record is not part of the JSON.
      const text = line === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new PeftError(`Expected a JSON object on ${file} line ${line} but received invalid JSON (${(err as Error).message})`, 'E_FORMAT');
      }
      yield { value, source: { file, line } };
    }
  } finally {
    lines.close();
    stream.destroy();
  }
  if (streamError) throw new PeftError(`Could not read the data file ${file}: ${streamError.message}`, 'E_IO');
}

/** Records already in memory, numbered like lines (index + 1). */
export async function* fromRecords(records: readonly unknown[]): AsyncGenerator<SourcedValue> {
  for (let i = 0; i < records.length; i++) yield { value: records[i], source: { file: IN_MEMORY, line: i + 1 } };
}
