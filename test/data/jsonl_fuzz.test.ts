/**
 * Bounded fuzzing of JSONL data files: small files of every record format (text, prompt/completion,
 * chat messages, alpaca, classification) are mutated a few thousand times, as records (fields
 * swapped for wrong types, huge or negative numbers, prototype names, deep nesting, long strings,
 * keys removed or added), as lines (removed, repeated, blank, BOM, CRLF, broken JSON, invalid UTF-8,
 * NUL, a record of another format) and as bytes, then read with loadDataset under random options.
 *
 * Every read must give a data set whose batches hold only real token ids, labels that are ids or -100,
 * and sequences no longer than maxSeqLength, or raise a PeftError. Seeded; see test/helpers/fuzz-loop.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadDataset, loadDatasets, type DataOptions, type Dataset, type Tokenizer } from '../../lib';
import { countOf, fuzzLoop, peftOutcome, type FuzzCase } from '../helpers/fuzz-loop';
import { jsonText, LIMITS, mutateBytes, mutateJsonText, mutateJsonValue, pick, STRANGE_STRINGS, strangeJsonValue, type Random } from '../helpers/mutate';
import { chatTokenizer, stories } from './fixtures';

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const STORY = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.';
const FILES: Record<string, unknown[]> = {
  text: [{ text: STORY }, { text: 'The sun was warm.' }, { text: 'Tom had a red ball. He threw it high.' }, { text: '' }],
  completion: [{ prompt: 'Once upon a time', completion: ', there was a dog.' }, { prompt: 'The cat', completion: ' sat on the mat.' }],
  chat: [
    { messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Tell a story.' }, { role: 'assistant', content: STORY }] },
    { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }] },
  ],
  alpaca: [{ instruction: 'Write a story.', input: '', output: STORY }, { instruction: 'Name a color.', input: 'sky', output: 'blue' }],
  classification: [{ text: 'I am happy.', label: 'pos' }, { text: 'I am sad.', label: 'neg' }, { text: 'A day.', label: 'pos' }],
};
const RECORD_KEYS = ['text', 'prompt', 'completion', 'messages', 'role', 'content', 'instruction', 'input', 'output', 'label'];
const ALL_RECORDS = Object.values(FILES).flat();

let plain: Tokenizer;
let chat: Tokenizer;
beforeAll(() => {
  LIMITS.longString = 3000; // tokenizing costs ~30 µs a character: long lines would only measure the tokenizer
  plain = stories();
  chat = chatTokenizer(CHATML, ['<|im_start|>', '<|im_end|>']);
});

interface DataCase extends FuzzCase {
  file: string;
  options: DataOptions;
  tokenizer: Tokenizer;
  split: boolean;
}

/** One line of a JSONL file changed, or lines added, removed or repeated. */
function mutateLines(lines: string[], random: Random): string[] {
  const out = [...lines];
  const i = Math.floor(random() * out.length);
  const r = random();
  const record = (() => {
    try {
      return JSON.parse(out[i] ?? '');
    } catch {
      return undefined; // an earlier mutation broke the line
    }
  })();
  if (r < 0.4 && record !== undefined) out[i] = jsonText(mutateJsonValue(record, random, () => false, RECORD_KEYS));
  else if (r < 0.5) out[i] = mutateJsonText(out[i] ?? '', random);
  else if (r < 0.55) out.splice(i, 1);
  else if (r < 0.6) out.splice(i, 0, out[i], out[i]);
  else if (r < 0.65) out.splice(i, 0, pick(random, ['', '   ', '\t', '\r']));
  else if (r < 0.7) out[i] = '\ufeff' + out[i];
  else if (r < 0.75) out[i] = jsonText(pick(random, ALL_RECORDS));
  else if (r < 0.85) out[i] = jsonText(random() < 0.5 ? strangeJsonValue(random) : { text: pick(random, STRANGE_STRINGS), label: strangeJsonValue(random) });
  else if (r < 0.9) out[i] = JSON.stringify({ text: 'x'.repeat(3000) });
  else out.push(...Array.from({ length: 20 }, () => out[i] ?? ''));
  return out;
}

function makeCase(i: number, random: Random, dir: string): DataCase {
  const format = pick(random, Object.keys(FILES));
  let lines = FILES[format].map((r) => JSON.stringify(r));
  let bytes: Buffer;
  const r = random();
  let what: string;
  if (r < 0.75) {
    what = 'records and lines';
    for (let k = 1 + Math.floor(random() * 2); k > 0; k--) lines = mutateLines(lines, random);
    bytes = Buffer.from(lines.join(random() < 0.2 ? '\r\n' : '\n') + (random() < 0.8 ? '\n' : ''), 'utf8');
  } else if (r < 0.9) {
    what = 'bytes';
    const base = Buffer.from(lines.join('\n') + '\n', 'utf8');
    bytes = Buffer.from(mutateBytes(new Uint8Array(base), random, { hot: base.length }));
  } else {
    what = 'invalid UTF-8 or NUL in a line';
    const base = Buffer.from(lines.join('\n') + '\n', 'utf8');
    const at = Math.floor(random() * base.length);
    bytes = Buffer.concat([base.subarray(0, at), Buffer.from(pick(random, [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x00], [0xe2, 0x82]])), base.subarray(at)]);
  }
  const file = path.join(dir, 'data.jsonl');
  fs.writeFileSync(file, bytes);
  const options: DataOptions = {
    maxSeqLength: pick(random, [1, 2, 8, 64, 512]),
    packing: random() < 0.3,
    trainOnPrompt: random() < 0.3,
    ...(random() < 0.3 ? { format: pick(random, ['text', 'completion', 'chat', 'alpaca', 'classification'] as const) } : {}),
  };
  return { description: `${format} file, ${what} mutated, options ${JSON.stringify(options)}`, file, options, tokenizer: random() < 0.8 ? chat : plain,
    split: random() < 0.2 };
}

/** Every batch of one epoch holds real ids, ids or -100 as labels, and fits maxSeqLength. */
function checkBatches(ds: Dataset, c: DataCase): void {
  const vocab = c.tokenizer.vocabSize;
  const s = ds.stats();
  for (const v of [s.records, s.examples, s.tokens, s.lossTokens, s.minLength, s.maxLength, s.meanLength]) {
    if (!Number.isFinite(v) || v < 0) throw new Error(`stats hold ${v}: ${JSON.stringify(s)}`);
  }
  for (const batch of ds.batches(2, { seed: 1, epoch: 0 })) {
    batch.ids.forEach((row, b) => {
      if (row.length > c.options.maxSeqLength!) throw new Error(`a sequence of ${row.length} tokens (maxSeqLength ${c.options.maxSeqLength})`);
      row.forEach((id, t) => {
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`token id ${id} outside the vocabulary of ${vocab}`);
        const label = batch.labels[b][t];
        if (label !== -100 && (!Number.isInteger(label) || label < 0 || label >= vocab)) throw new Error(`label ${label}`);
      });
    });
    for (const l of batch.classLabels ?? []) if (!Number.isInteger(l) || l < 0 || l >= 2 ** 31) throw new Error(`class label ${l}`);
  }
}

async function exercise(c: DataCase): Promise<string> {
  try {
    if (c.split) {
      const sets = await loadDatasets({ data: c.file, validFraction: 0.3, seed: 2 }, c.tokenizer, c.options);
      for (const ds of [sets.train, sets.valid, sets.test]) if (ds) checkBatches(ds, c);
    } else {
      checkBatches(await loadDataset(c.file, c.tokenizer, c.options), c);
    }
    return 'loaded';
  } catch (e) {
    return peftOutcome(e);
  }
}

describe('reading mutated JSONL data', () => {
  it('answers every mutation with sound batches or a PeftError', async () => {
    const run = await fuzzLoop({ name: 'jsonl', seed: 5, budgetMs: 15000, maxCases: 3000, minCases: 301 }, makeCase, exercise);
    if (run.replay) return;
    expect(run.cases).toBeGreaterThan(300);
    expect(countOf(run, 'loaded')).toBeGreaterThan(0);
    expect(countOf(run, 'E_FORMAT')).toBeGreaterThan(0);
  }, Number(process.env.PEFT_FUZZ_MS ?? 15000) + 60000);
});
