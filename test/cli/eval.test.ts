import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, type Model } from '../../lib/models/model';
import { ensureBuilt } from '../helpers/built';
import { cliOk, runCli } from '../helpers/cli';
import { STORIES_HF_DIR } from '../helpers/models';

const TEXTS = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.',
  'The hare was soon far out of sight, and he lay down beside the course to take a nap.',
  'Tom and Sue went to the park. They saw a big red ball and played with it all day long. Then they went home.',
];

let model: Model;
let dir: string;
let data: string;
beforeAll(async () => {
  ensureBuilt();
  model = await loadModel(STORIES_HF_DIR);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-cli-eval-'));
  data = path.join(dir, 'valid.jsonl');
  fs.writeFileSync(data, TEXTS.map((text) => JSON.stringify({ text })).join('\n') + '\n\n');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function evalJson(args: string[]) {
  return JSON.parse(cliOk(['eval', '--model', STORIES_HF_DIR, '--data-file', data, '--json', ...args]));
}

/** -log p(ids[t] | ids[start..t-1]) from the model's logits, log-softmax written out here. */
async function tokenLosses(ids: number[], start: number, end: number): Promise<number[]> {
  const logits = (await model.forward([ids.slice(start, end)])).toFloat32Array();
  const vocab = model.config.vocabSize;
  const out: number[] = [];
  for (let t = start + 1; t < end; t++) {
    const row = logits.subarray((t - 1 - start) * vocab, (t - start) * vocab);
    const max = Math.max(...row);
    const logSum = Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) + max;
    out.push(logSum - row[ids[t]]);
  }
  return out;
}

describe('peft-native eval', () => {
  it('perplexity is exp of the token-weighted mean of model.loss over the texts', async () => {
    let sum = 0;
    let count = 0;
    for (const text of TEXTS) {
      const ids = model.tokenizer!.encode(text);
      const { loss } = await model.loss([ids]);
      sum += loss * (ids.length - 1);
      count += ids.length - 1;
    }
    const r = evalJson([]);
    expect(r.texts).toBe(3);
    expect(r.tokens).toBe(count);
    expect(r.windows).toBe(3);
    expect(r.window).toBe(512);
    expect(r.loss).toBeCloseTo(sum / count, 10);
    expect(r.perplexity).toBeCloseTo(Math.exp(sum / count), 9);
  });

  it('cuts long texts into windows of --max-seq-length that predict every token once', async () => {
    const W = 8;
    const losses: number[] = [];
    for (const text of TEXTS) {
      const ids = model.tokenizer!.encode(text);
      // Token t is predicted in the window that starts at the last multiple of W-1 below t.
      for (let start = 0; start + 1 < ids.length; start += W - 1) losses.push(...(await tokenLosses(ids, start, Math.min(start + W, ids.length))));
    }
    const mean = losses.reduce((a, b) => a + b, 0) / losses.length;
    const r = evalJson(['--max-seq-length', String(W)]);
    expect(r.tokens).toBe(losses.length);
    expect(r.loss).toBeCloseTo(mean, 4);
    expect(r.perplexity).toBeCloseTo(Math.exp(mean), 3);
    // Shorter context than the whole text: a higher loss than with the full context.
    expect(r.loss).toBeGreaterThan(evalJson([]).loss);
  });

  it('--max-samples takes the first texts; the text output shows the numbers', async () => {
    const ids = model.tokenizer!.encode(TEXTS[0]);
    const { loss } = await model.loss([ids]);
    expect(evalJson(['--max-samples', '1']).loss).toBeCloseTo(loss, 10);
    const text = cliOk(['eval', '-m', STORIES_HF_DIR, '-d', data]);
    const r = evalJson([]);
    expect(text).toContain(`loss        ${r.loss.toFixed(4)}\n`);
    expect(text).toContain(`perplexity  ${r.perplexity.toFixed(3)}\n`);
    expect(text).toContain(`3 texts, ${r.tokens} tokens predicted in 3 windows of up to 512`);
  });

  it('bad data: a one-line error naming the file (and line) and exit code 1', () => {
    const write = (name: string, content: string) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, content);
      return p;
    };
    const cases: Array<[string, string]> = [
      [path.join(dir, 'missing.jsonl'), `peft-native: Could not read the data file ${path.join(dir, 'missing.jsonl')}: ENOENT`],
      [write('broken.jsonl', '{"text":"fine"}\n{"text": oops}\n'), `peft-native: ${path.join(dir, 'broken.jsonl')}:2 is not JSON`],
      [write('notext.jsonl', '{"text":"fine"}\n\n{"prompt":"p","completion":"c"}\n'), `peft-native: ${path.join(dir, 'notext.jsonl')}:3 has no "text" string`],
      [write('empty.jsonl', '\n\n'), `peft-native: ${path.join(dir, 'empty.jsonl')} holds no examples`],
    ];
    for (const [file, message] of cases) {
      const r = runCli(['eval', '-m', STORIES_HF_DIR, '-d', file]);
      expect(r.code).toBe(1);
      expect(r.stderr.startsWith(message)).toBe(true);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const long = runCli(['eval', '-m', STORIES_HF_DIR, '-d', data, '--max-seq-length', '4096']);
    expect(long.code).toBe(1);
    expect(long.stderr).toBe("peft-native: Expected --max-seq-length at most 512 (the model's context) but received 4096 [E_RANGE]\n");
  });
});
