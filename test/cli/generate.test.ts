import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadModel, type Model } from '../../lib/models/model';
import { ensureBuilt } from '../helpers/built';
import { cliOk, runCli } from '../helpers/cli';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';

let model: Model;
let dir: string;
beforeAll(async () => {
  ensureBuilt();
  model = await loadModel(STORIES_HF_DIR);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-cli-generate-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('peft-native generate', () => {
  it('with --temperature 0 prints what model.generate() returns, greedy', async () => {
    const expected = await model.generate('Once upon a time', { maxNewTokens: 40, temperature: 0 });
    const out = cliOk(['generate', '--model', STORIES_HF_DIR, '--prompt', 'Once upon a time', '--max-new-tokens', '40', '--temperature', '0']);
    expect(out).toBe(`${expected.text}\n`);
    expect(expected.tokens.length).toBeGreaterThan(10);
  });

  it('samples like model.generate() with the same temperature, top-k, top-p and seed', async () => {
    const options = { maxNewTokens: 30, temperature: 0.9, topK: 40, topP: 0.95, seed: 1234 };
    const expected = await model.generate('Lily and Tom', options);
    const greedy = await model.generate('Lily and Tom', { maxNewTokens: 30 });
    expect(expected.text).not.toBe(greedy.text); // the sampling flags do something
    const out = cliOk(['generate', '-m', STORIES_HF_DIR, '-p', 'Lily and Tom', '--max-new-tokens', '30', '--temperature', '0.9', '--top-k', '40', '--top-p', '0.95', '--seed', '1234']);
    expect(out).toBe(`${expected.text}\n`);
  });

  it('--no-echo prints only the continuation; --stop ends at a stop string', async () => {
    const expected = await model.generate('Once upon a time', { maxNewTokens: 40 });
    const prompt = model.tokenizer!.decode(model.tokenizer!.encode('Once upon a time'));
    const out = cliOk(['generate', '-m', STORIES_HF_DIR, '-p', 'Once upon a time', '--max-new-tokens', '40', '--no-echo']);
    expect(out).toBe(`${expected.text.slice(prompt.length)}\n`);
    const stopped = cliOk(['generate', '-m', STORIES_HF_DIR, '-p', 'Once upon a time', '--max-new-tokens', '40', '--stop', 'Lily', '--no-echo']);
    const continuation = expected.text.slice(prompt.length);
    expect(continuation).toContain('Lily');
    expect(stopped).toBe(`${continuation.slice(0, continuation.indexOf('Lily'))}\n`);
  });

  it('reads a GGUF file too', async () => {
    const gguf = await loadModel(STORIES_GGUF);
    const expected = await gguf.generate('The cat', { maxNewTokens: 20 });
    expect(cliOk(['generate', '-m', STORIES_GGUF, '-p', 'The cat', '--max-new-tokens', '20'])).toBe(`${expected.text}\n`);
  });

  it('takes settings from a config file, with flags on top', async () => {
    const cfg = path.join(dir, 'gen.yaml');
    fs.writeFileSync(cfg, `model: ${STORIES_HF_DIR}\nprompt: Tom had a\nmax_new_tokens: 5\n`);
    const five = await model.generate('Tom had a', { maxNewTokens: 5 });
    const twelve = await model.generate('Tom had a', { maxNewTokens: 12 });
    expect(cliOk(['generate', '--config', cfg])).toBe(`${five.text}\n`);
    expect(cliOk(['generate', '--config', cfg, '--max-new-tokens', '12'])).toBe(`${twelve.text}\n`);
    expect(cliOk(['generate', '--config', cfg, '--set', 'max_new_tokens=12'])).toBe(`${twelve.text}\n`);
  });

  it('bad input: a one-line error and exit code 1', () => {
    const noPrompt = runCli(['generate', '-m', STORIES_HF_DIR]);
    expect(noPrompt.code).toBe(1);
    expect(noPrompt.stderr).toBe('peft-native: Missing prompt (the text to continue): give --prompt <text> or set prompt in a config file [E_CONFIG]\n');
    const noModel = runCli(['generate', '-m', path.join(dir, 'nothing-here'), '-p', 'x']);
    expect(noModel.code).toBe(1);
    expect(noModel.stderr).toBe(`peft-native: Could not find the model at ${path.join(dir, 'nothing-here')} [E_IO]\n`);
    const tooLong = runCli(['generate', '-m', STORIES_HF_DIR, '-p', 'x', '--max-new-tokens', '5000']);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toMatch(/^peft-native: Expected at most 512 tokens .* \[E_RANGE\]\n$/);
    const topP = runCli(['generate', '-m', STORIES_HF_DIR, '-p', 'x', '--top-p', '1.5']);
    expect(topP.stderr).toBe('peft-native: Expected a number in [0, 1] for --top-p but received the number 1.5 [E_CONFIG]\n');
  });
});
