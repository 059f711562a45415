/** Shared pieces of the data tests: the stories260K tokenizer (optionally with a chat template) and JSONL files in temp dirs. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadTokenizer, Tokenizer } from '../../lib';
import { STORIES_HF_DIR } from '../helpers/models';

export const stories = (): Tokenizer => loadTokenizer(STORIES_HF_DIR);

/**
 * The stories260K tokenizer with extra special tokens appended after its 512 ids (as chat models add
 * theirs) and a chat template in its config.
 */
export function chatTokenizer(chatTemplate: string, specialTokens: string[], config: Record<string, string> = {}): Tokenizer {
  const json = JSON.parse(fs.readFileSync(path.join(STORIES_HF_DIR, 'tokenizer.json'), 'utf8'));
  specialTokens.forEach((content, i) =>
    json.added_tokens.push({ id: 512 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }),
  );
  return Tokenizer.fromJSON(json, { bos_token: '<s>', eos_token: '</s>', ...config, chat_template: chatTemplate });
}

const dirs: string[] = [];

/** A fresh temporary folder, removed after the test file. */
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-data-'));
  dirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes lines (objects as JSON, strings as they are) to a JSONL file and returns its path. */
export function writeJsonl(name: string, lines: (object | string)[], dir = tempDir()): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

/** The ids whose label is not -100. */
export const lossIds = (labels: number[]) => labels.filter((l) => l !== -100);
