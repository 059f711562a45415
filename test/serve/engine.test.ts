// The serving engine: requests with different adapters (and none), prompts of different lengths,
// joining and leaving the batch between steps, decoded in one forward pass per step. Checked against
// per-sequence decoding: the same model with the adapter attached (PeftModel.generate, batch 1 with
// its own KV cache) must give the same greedy tokens, and the same text.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, loadModel, PeftError, type Model } from '../../lib';
import { Engine } from '../../lib/serve/engine';
import { STORIES_HF_DIR } from '../helpers/models';
import { randomizeAdapter } from '../helpers/quant-gguf';

let dir: string;
let base: Model;
let reference: Model;

async function saveLora(name: string, seed: number, extra: Record<string, unknown> = {}): Promise<void> {
  const peft = getPeftModel(await loadModel(STORIES_HF_DIR), { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], ...extra }, { seed });
  randomizeAdapter(peft, seed);
  await peft.saveAdapter(path.join(dir, name));
  peft.dispose();
}

/** Greedy tokens of one sequence with adapter `name` (or none), decoded alone. */
async function alone(prompt: string, name: string | null, maxNewTokens: number): Promise<{ text: string; tokens: number[] }> {
  if (!name) {
    const out = await reference.generate(prompt, { maxNewTokens });
    return { text: out.text.slice(reference.tokenizer!.decode(reference.tokenizer!.encode(prompt)).length), tokens: out.tokens };
  }
  const peft = await loadAdapter(reference, path.join(dir, name), { adapterName: name });
  try {
    const out = await peft.generate(prompt, { maxNewTokens });
    return { text: out.text.slice(reference.tokenizer!.decode(reference.tokenizer!.encode(prompt)).length), tokens: out.tokens };
  } finally {
    peft.deleteAdapter(name);
  }
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-engine-'));
  base = await loadModel(STORIES_HF_DIR);
  reference = await loadModel(STORIES_HF_DIR);
  await saveLora('a', 1);
  await saveLora('b', 2, { r: 8, lora_alpha: 4 });
  await saveLora('c', 3, { target_modules: ['q_proj', 'v_proj'], use_rslora: true });
});
afterAll(() => {
  base.dispose();
  reference.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

const PROMPTS = ['Once upon a time', 'The little dog', 'Lily and Tom went to the park. They saw a big', 'Tim', 'One day, a girl named Sue found a box in her'];

describe('Engine', () => {
  it('decodes a batch of requests with mixed adapters token for token as each would alone', async () => {
    const engine = new Engine(base, { adapters: { dir } });
    const jobs = PROMPTS.flatMap((prompt, i) => [null, 'a', 'b', 'c'].map((adapter, j) => ({ prompt, adapter, maxTokens: 8 + ((i + j) % 3) * 6 })));
    const results = await Promise.all(jobs.map((j) => engine.complete({ ...j, ignoreEos: true })));
    const stats = engine.stats();
    expect(stats.completed).toBe(jobs.length);
    // Continuous batching: far fewer steps than tokens.
    expect(stats.steps).toBeLessThan(stats.generatedTokens / 4);
    for (let k = 0; k < jobs.length; k++) {
      const want = await alone(jobs[k].prompt, jobs[k].adapter, jobs[k].maxTokens);
      expect({ job: k, tokens: results[k].tokens }).toEqual({ job: k, tokens: want.tokens.slice(0, jobs[k].maxTokens) });
      expect(results[k].text).toBe(want.text);
      expect(results[k].finishReason).toBe('length');
      expect(results[k].completionTokens).toBe(jobs[k].maxTokens);
    }
    // The adapters changed the output (or the comparison would prove nothing).
    expect(results[1].tokens).not.toEqual(results[0].tokens);
    expect(results[2].tokens).not.toEqual(results[0].tokens);
    await engine.dispose();
    expect(engine.stats()).toMatchObject({ openSlots: 0, nativeAdapters: 0, running: 0, waiting: 0 });
  });

  it('lets requests join and leave between steps, with prompts fed in chunks', async () => {
    const engine = new Engine(base, { adapters: { dir }, maxBatch: 3, stepTokens: 5 });
    const first = engine.complete({ prompt: PROMPTS[2], adapter: 'a', maxTokens: 20, ignoreEos: true });
    await new Promise((r) => setTimeout(r, 5));
    const later = await Promise.all(PROMPTS.map((prompt, i) => engine.complete({ prompt, adapter: i % 2 ? 'b' : null, maxTokens: 5 + i, ignoreEos: true })));
    const r0 = await first;
    expect(r0.tokens).toEqual((await alone(PROMPTS[2], 'a', 20)).tokens);
    for (let i = 0; i < PROMPTS.length; i++) expect(later[i].tokens).toEqual((await alone(PROMPTS[i], i % 2 ? 'b' : null, 5 + i)).tokens);
    await engine.dispose();
  });

  it('streams pieces that add up to the text, honours stop strings and cancels', async () => {
    const engine = new Engine(base, { adapters: { dir } });
    const want = await alone(PROMPTS[0], null, 30);
    const stream = engine.stream({ prompt: PROMPTS[0], maxTokens: 30, ignoreEos: true });
    let text = '';
    for await (const piece of stream) text += piece.text;
    expect(text).toBe(want.text);
    expect((await stream.result).text).toBe(want.text);
    // A stop string from the middle of the greedy text: the text ends just before it.
    const words = want.text.trim().split(/\s+/);
    const stopWord = words[Math.min(3, words.length - 1)];
    const stopped = await engine.complete({ prompt: PROMPTS[0], maxTokens: 30, stop: [stopWord], ignoreEos: true });
    expect(stopped.finishReason).toBe('stop');
    expect(stopped.text).toBe(want.text.slice(0, want.text.indexOf(stopWord)));
    // Cancelled by an AbortSignal and by leaving the loop.
    const controller = new AbortController();
    const s2 = engine.stream({ prompt: PROMPTS[1], maxTokens: 200, ignoreEos: true, signal: controller.signal });
    let n = 0;
    for await (const piece of s2) {
      void piece;
      if (++n === 3) controller.abort();
    }
    const r2 = await s2.result;
    expect(r2.finishReason).toBe('cancelled');
    expect(r2.completionTokens).toBeLessThan(200);
    const s3 = engine.stream({ prompt: PROMPTS[1], maxTokens: 200, ignoreEos: true });
    for await (const piece of s3) {
      void piece;
      break;
    }
    expect((await s3.result).finishReason).toBe('cancelled');
    expect(engine.stats()).toMatchObject({ cancelled: 2, openSlots: 0 });
    await engine.dispose();
  });

  it('refuses bad requests naming the field, and a full queue or a closed engine', async () => {
    const engine = new Engine(base, { adapters: { dir }, maxBatch: 1, maxQueue: 1 });
    const bad: [Record<string, unknown>, string, string][] = [
      [{ prompt: 42 }, 'prompt', 'E_ARGUMENT'],
      [{ prompt: [] }, 'prompt', 'E_ARGUMENT'],
      [{ prompt: [1, 99999] }, 'prompt', 'E_ARGUMENT'],
      [{ prompt: 'x', maxTokens: 1e9 }, 'maxTokens', 'E_RANGE'],
      [{ prompt: 'x', maxTokens: 1.5 }, 'maxTokens', 'E_RANGE'],
      [{ prompt: 'x', temperature: -1 }, 'temperature', 'E_RANGE'],
      [{ prompt: 'x', topP: 0 }, 'topP', 'E_RANGE'],
      [{ prompt: 'x', stop: 'no' }, 'stop', 'E_ARGUMENT'],
      [{ prompt: 'x', temperature: 'hot' }, 'temperature', 'E_ARGUMENT'],
    ];
    for (const [request, param, code] of bad) {
      let error: unknown;
      try {
        engine.stream(request as never);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(PeftError);
      expect(error).toMatchObject({ code, param });
      expect((error as Error).message).toContain(param);
    }
    expect(() => engine.stream({ prompt: 'x', adapter: 'nope' })).toThrow(/Unknown adapter "nope"/);
    const running = engine.complete({ prompt: 'x', maxTokens: 40, ignoreEos: true });
    await new Promise((r) => setImmediate(r));
    const queued = engine.complete({ prompt: 'x', maxTokens: 2 });
    expect(() => engine.stream({ prompt: 'x' })).toThrow(expect.objectContaining({ code: 'E_BUSY' }));
    const closing = engine.close();
    expect(() => engine.stream({ prompt: 'x' })).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }));
    await closing;
    expect((await running).completionTokens).toBe(40);
    expect((await queued).finishReason).not.toBe('cancelled');
    await engine.dispose();
  });
});
