/** Detects the format of JSONL records and checks each record's fields, naming the file and line of a bad one. */
import type { ChatMessage } from '../models/tokenizer';
import { PeftError } from '../errors';
import { fail, preview } from '../validate';
import type { ClassLabel, DataFormat, RecordSource } from './types';

/** A record whose fields have the types its format needs. */
export type ParsedRecord =
  | { format: 'text'; text: string }
  | { format: 'completion'; prompt: string; completion: string }
  | { format: 'chat'; messages: ChatMessage[] }
  | { format: 'alpaca'; instruction: string; input: string; output: string }
  | { format: 'classification'; text: string; label: ClassLabel };

/** The roles a chat record may use. */
export const CHAT_ROLES: readonly string[] = ['system', 'user', 'assistant'];

const KEY_SETS = '{"text"}, {"prompt","completion"}, {"messages"}, {"instruction","input","output"} or {"text","label"}';

const MAX_CLASS_ID = 2 ** 31;

const where = (source: RecordSource) => `${source.file} line ${source.line}`;

function expectRecordObject(value: unknown, source: RecordSource): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(where(source), `a JSON object with the keys ${KEY_SETS}`, value, 'E_FORMAT');
  }
  return value as Record<string, unknown>;
}

/** The format a record's keys point to (the most specific key set that is present). */
export function detectFormat(value: unknown, source: RecordSource): DataFormat {
  const record = expectRecordObject(value, source);
  const has = (key: string) => Object.prototype.hasOwnProperty.call(record, key);
  if (has('messages')) return 'chat';
  if (has('instruction') && has('output')) return 'alpaca';
  if (has('prompt') && has('completion')) return 'completion';
  if (has('text') && has('label')) return 'classification';
  if (has('text')) return 'text';
  const keys = Object.keys(record);
  const received = keys.length ? `the keys ${keys.slice(0, 20).map((k) => preview(k, 40)).join(', ')}` : 'an empty object';
  throw new PeftError(`Expected a record with the keys ${KEY_SETS} on ${where(source)} but received ${received}`, 'E_FORMAT');
}

function stringField(record: Record<string, unknown>, key: string, source: RecordSource, optional = false): string {
  const value = record[key];
  if (value === undefined && optional) return '';
  if (typeof value !== 'string') fail(`"${key}" on ${where(source)}`, 'a string', value, 'E_FORMAT');
  return value;
}

function chatMessages(record: Record<string, unknown>, source: RecordSource): ChatMessage[] {
  const messages = record.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    fail(`"messages" on ${where(source)}`, 'a non-empty array of {"role","content"}', messages, 'E_FORMAT');
  }
  return messages.map((m: unknown, i) => {
    const at = `"messages"[${i}] on ${where(source)}`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) fail(at, 'an object {"role","content"}', m, 'E_FORMAT');
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !CHAT_ROLES.includes(role)) {
      fail(`the role of ${at}`, `one of ${CHAT_ROLES.map((r) => `"${r}"`).join(', ')}`, role, 'E_FORMAT');
    }
    if (typeof content !== 'string') fail(`the content of ${at}`, 'a string', content, 'E_FORMAT');
    return { role, content };
  });
}

function classLabel(record: Record<string, unknown>, source: RecordSource): ClassLabel {
  const label = record.label;
  // Integer labels are class ids as they are, and class ids are int32 on their way to the model.
  const ok = (typeof label === 'string' && label !== '') || (typeof label === 'number' && Number.isInteger(label) && label >= 0 && label < MAX_CLASS_ID);
  if (!ok) fail(`"label" on ${where(source)}`, 'a non-empty string or an integer in [0, 2^31)', label, 'E_FORMAT');
  return label as ClassLabel;
}

/** Checks a record against `format`; a missing or wrongly typed field is an E_FORMAT naming the file and line. */
export function parseRecord(value: unknown, format: DataFormat, source: RecordSource): ParsedRecord {
  const record = expectRecordObject(value, source);
  switch (format) {
    case 'text':
      return { format, text: stringField(record, 'text', source) };
    case 'completion':
      return { format, prompt: stringField(record, 'prompt', source), completion: stringField(record, 'completion', source) };
    case 'chat':
      return { format, messages: chatMessages(record, source) };
    case 'alpaca':
      return {
        format,
        instruction: stringField(record, 'instruction', source),
        input: stringField(record, 'input', source, true),
        output: stringField(record, 'output', source),
      };
    case 'classification':
      return { format, text: stringField(record, 'text', source), label: classLabel(record, source) };
  }
}
