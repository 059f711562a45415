/** Reads JSON Lines line by line (files of hundreds of MB never sit in memory as one string). */
import * as fs from 'node:fs';

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

/**
 * The lines of a file as text, read in chunks. Each line is decoded as strict UTF-8: invalid bytes
 * are an E_FORMAT naming the line, not a silent U+FFFD in the training text. Lines end at \n, \r\n or \r.
 */
async function* readLines(file: string): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let pending: Buffer[] = [];
  let emitted = 0;
  // The lines of one \n-terminated piece (a lone \r inside it ends a line too, as readline has it).
  const linesOf = (bytes: Buffer): string[] => {
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new PeftError(`Expected UTF-8 text on ${file} line ${emitted + 1} but it holds invalid bytes`, 'E_FORMAT');
    }
    const lines = (text.endsWith('\r') ? text.slice(0, -1) : text).split('\r');
    emitted += lines.length;
    return lines;
  };
  const stream = fs.createReadStream(file);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
        pending.push(chunk.subarray(start, nl));
        yield* linesOf(Buffer.concat(pending));
        pending = [];
        start = nl + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
    }
  } catch (err) {
    if (err instanceof PeftError) throw err;
    throw new PeftError(`Could not read the data file ${file}: ${(err as Error).message}`, 'E_IO');
  } finally {
    stream.destroy();
  }
  if (pending.length) yield* linesOf(Buffer.concat(pending));
}

/** The values of a JSONL file, one per non-blank line; bad JSON is an E_FORMAT naming the file and line. */
export async function* readJsonl(file: string): AsyncGenerator<SourcedValue> {
  await checkReadable(file);
  let line = 0;
  for await (const raw of readLines(file)) {
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
}

/** Records already in memory, numbered like lines (index + 1). */
export async function* fromRecords(records: readonly unknown[]): AsyncGenerator<SourcedValue> {
  for (let i = 0; i < records.length; i++) yield { value: records[i], source: { file: IN_MEMORY, line: i + 1 } };
}
