// `peft-native serve` as a process: it listens, serves the base model and a directory of adapters
// to the openai client, and on SIGTERM finishes the request in flight before exiting with 0.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import OpenAI from 'openai';

import { getPeftModel, loadModel } from '../../lib';
import { ensureBuilt } from '../helpers/built';
import { CLI } from '../helpers/cli';
import { STORIES_HF_DIR } from '../helpers/models';
import { randomizeAdapter } from '../helpers/quant-gguf';

let dir: string;
beforeAll(async () => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-cli-serve-'));
  const peft = getPeftModel(await loadModel(STORIES_HF_DIR), { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }, { seed: 5 });
  randomizeAdapter(peft, 5);
  await peft.saveAdapter(path.join(dir, 'adapters', 'tales'));
  peft.dispose();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Starts the server; resolves with the process and its URL once it prints "listening on". */
function start(args: string[]): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve({ child, url: m[1], stderr: () => err });
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
}

describe('peft-native serve', () => {
  it('serves the openai client and drains on SIGTERM', async () => {
    const { child, url, stderr } = await start(['--model', STORIES_HF_DIR, '--adapters', path.join(dir, 'adapters'), '--port', '0', '--api-key', 'k1', '--model-name', 'stories']);
    const client = new OpenAI({ apiKey: 'k1', baseURL: `${url}/v1`, maxRetries: 0 });
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['stories', 'tales']);
    const short = await client.completions.create({ model: 'tales', prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
    expect(short.choices[0].text.length).toBeGreaterThan(0);
    // A long streamed request, then SIGTERM while it runs: it still gets every token.
    const stream = await client.completions.create({ model: 'tales', prompt: 'Once', max_tokens: 300, stream: true, ignore_eos: true } as never);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let text = '';
    let chunks = 0;
    let reason: string | null = null;
    for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
      if (++chunks === 2) child.kill('SIGTERM');
      text += chunk.choices[0]?.text ?? '';
      reason = chunk.choices[0]?.finish_reason ?? reason;
    }
    expect(reason).toBe('length');
    expect(text.length).toBeGreaterThan(100);
    expect(await exited).toBe(0);
    expect(stderr()).toMatch(/SIGTERM: draining 1 request/);
  });

  it('refuses a bad --adapter pair', async () => {
    await expect(start(['--model', STORIES_HF_DIR, '--adapter', 'oops', '--port', '0'])).rejects.toThrow(/Expected --adapter as name=path/);
  });
});
