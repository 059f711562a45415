// The OpenAI-compatible server, driven by the official `openai` npm client as a real client: models,
// completions and chat completions (streamed and whole), the adapter chosen by `model`, admin
// endpoints, health and metrics, the API key, OpenAI-style errors naming the field, a full queue,
// a client that disconnects, and draining.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import OpenAI from 'openai';

import { getPeftModel, loadAdapter, loadModel, type Model } from '../../lib';
import { createServer, type PeftServer } from '../../lib/serve/server';
import { STORIES_HF_DIR } from '../helpers/models';
import { randomizeAdapter } from '../helpers/quant-gguf';

let dir: string;
let base: Model;
let reference: Model;
let server: PeftServer;
let url: string;
let client: OpenAI;
const KEY = 'sk-test-key';

async function saveLora(target: string, seed: number): Promise<void> {
  const peft = getPeftModel(await loadModel(STORIES_HF_DIR), { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] }, { seed });
  randomizeAdapter(peft, seed);
  await peft.saveAdapter(target);
  peft.dispose();
}

/** Greedy new text of `prompt` with the adapter in `adapterDir` (or none), decoded alone by PeftModel. */
async function alone(prompt: string, adapterDir: string | null, maxNewTokens: number): Promise<string> {
  const tok = reference.tokenizer!;
  const promptText = tok.decode(tok.encode(prompt));
  if (!adapterDir) return (await reference.generate(prompt, { maxNewTokens })).text.slice(promptText.length);
  const peft = await loadAdapter(reference, adapterDir, { adapterName: 'ref' });
  try {
    return (await peft.generate(prompt, { maxNewTokens })).text.slice(promptText.length);
  } finally {
    peft.deleteAdapter('ref');
  }
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-server-'));
  fs.mkdirSync(path.join(dir, 'adapters'));
  await saveLora(path.join(dir, 'adapters', 'poet'), 1);
  await saveLora(path.join(dir, 'adapters', 'chef'), 2);
  await saveLora(path.join(dir, 'extra'), 3);
  base = await loadModel(STORIES_HF_DIR);
  reference = await loadModel(STORIES_HF_DIR);
  server = createServer(base, { adapters: { dir: path.join(dir, 'adapters') }, apiKey: KEY, modelName: 'stories260K' });
  url = (await server.listen()).url;
  client = new OpenAI({ apiKey: KEY, baseURL: `${url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await server.close();
  base.dispose();
  reference.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('peft-native server with the openai client', () => {
  it('lists the base model and its adapters', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['stories260K', 'chef', 'poet']);
  });

  it('completes with the adapter the request names, as PeftModel.generate does, streamed or whole', async () => {
    const prompt = 'Once upon a time, there was a';
    for (const [model, adapterDir] of [['stories260K', null], ['poet', path.join(dir, 'adapters', 'poet')], ['chef', path.join(dir, 'adapters', 'chef')]] as const) {
      const want = await alone(prompt, adapterDir, 24);
      const whole = await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0, ignore_eos: true } as never);
      expect(whole.choices[0].text).toBe(want);
      expect(whole.choices[0].finish_reason).toBe('length');
      expect(whole.usage).toMatchObject({ completion_tokens: 24, prompt_tokens: reference.tokenizer!.encode(prompt).length });
      const stream = await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0, stream: true, ignore_eos: true } as never);
      let text = '';
      let reason: string | null = null;
      for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
        text += chunk.choices[0]?.text ?? '';
        reason = chunk.choices[0]?.finish_reason ?? reason;
      }
      expect(text).toBe(want);
      expect(reason).toBe('length');
    }
  });

  it('answers chat completions, streamed and whole, with usage', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me a story about a cat.' }];
    const whole = await client.chat.completions.create({ model: 'poet', messages, max_tokens: 20, temperature: 0 });
    const content = whole.choices[0].message.content ?? '';
    expect(whole.choices[0].message.role).toBe('assistant');
    expect(whole.usage!.completion_tokens).toBeGreaterThan(0);
    expect(whole.usage!.completion_tokens).toBeLessThanOrEqual(20);
    const stream = await client.chat.completions.create({ model: 'poet', messages, max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(content);
    expect(usage).toEqual(whole.usage);
    // Sampling settings travel: a seeded sample is reproducible and differs from greedy.
    const sample = (seed: number) => client.chat.completions.create({ model: 'poet', messages, max_tokens: 20, temperature: 1.5, top_p: 0.95, seed, ignore_eos: true } as never);
    const [s1, s2] = await Promise.all([sample(7), sample(7)]);
    expect(s1.choices[0].message.content).toBe(s2.choices[0].message.content);
  });

  it('refuses bad requests with OpenAI errors naming the field, and a missing key', async () => {
    const cases: [Record<string, unknown>, number, string | null][] = [
      [{ model: 'nobody', prompt: 'x' }, 404, 'model'],
      [{ model: 'poet', prompt: 'x', max_tokens: 1e9 }, 400, 'max_tokens'],
      [{ model: 'poet', prompt: 'x', temperature: -2 }, 400, 'temperature'],
      [{ model: 'poet', prompt: 'x', top_p: 7 }, 400, 'top_p'],
      [{ model: 'poet', prompt: 'x', n: 3 }, 400, 'n'],
      [{ model: 'poet', prompt: { text: 'x' } }, 400, 'prompt'],
      [{ model: 'poet', prompt: 'x'.repeat(3000) }, 400, 'prompt'],
    ];
    for (const [body, status, param] of cases) {
      let error: unknown;
      await client.completions.create(body as never).catch((e: unknown) => (error = e));
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect({ body, status: (error as InstanceType<typeof OpenAI.APIError>).status, param: (error as { param?: string }).param }).toEqual({ body, status, param });
    }
    const chat = await client.chat.completions.create({ model: 'poet', messages: 'hi' } as never).catch((e: unknown) => e);
    expect(chat).toMatchObject({ status: 400, param: 'messages' });
    const badKey = new OpenAI({ apiKey: 'wrong', baseURL: `${url}/v1`, maxRetries: 0 });
    await expect(badKey.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    // Not JSON at all.
    const raw = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: '{"prompt": "x",' });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
    const missing = await fetch(`${url}/v1/nothing`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(missing.status).toBe(404);
    // The server is still serving.
    expect((await client.completions.create({ model: 'poet', prompt: 'Tim', max_tokens: 3 })).choices[0].text.length).toBeGreaterThan(0);
  });

  it('loads, reloads and unloads adapters from the admin endpoints while serving', async () => {
    const admin = (action: string, body: unknown) =>
      fetch(`${url}/admin/adapters/${action}`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const loaded = await admin('load', { name: 'extra', path: path.join(dir, 'extra') });
    expect(loaded.status).toBe(200);
    expect(((await client.models.list()).data.map((m) => m.id))).toContain('extra');
    const want = await alone('The dog', path.join(dir, 'extra'), 10);
    expect((await client.completions.create({ model: 'extra', prompt: 'The dog', max_tokens: 10, temperature: 0, ignore_eos: true } as never)).choices[0].text).toBe(want);
    // New weights on disk, then a reload: the next request uses them.
    await saveLora(path.join(dir, 'extra'), 33);
    expect(await (await admin('reload', { name: 'extra' })).json()).toMatchObject({ name: 'extra', version: 2 });
    const after = await alone('The dog', path.join(dir, 'extra'), 10);
    expect(after).not.toBe(want);
    expect((await client.completions.create({ model: 'extra', prompt: 'The dog', max_tokens: 10, temperature: 0, ignore_eos: true } as never)).choices[0].text).toBe(after);
    // A damaged adapter is refused and the old version keeps serving.
    fs.writeFileSync(path.join(dir, 'extra', 'adapter_model.safetensors'), 'garbage');
    const refused = await admin('reload', { name: 'extra' });
    expect(refused.status).toBe(422);
    expect((await client.completions.create({ model: 'extra', prompt: 'The dog', max_tokens: 10, temperature: 0, ignore_eos: true } as never)).choices[0].text).toBe(after);
    expect(await (await admin('unload', { name: 'extra' })).json()).toEqual({ name: 'extra', unloaded: true });
    expect((await admin('load', {})).status).toBe(400);
  });

  it('reports health and Prometheus metrics', async () => {
    const health = await fetch(`${url}/health`);
    expect(await health.json()).toMatchObject({ status: 'ok', running: 0 });
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/^# TYPE peft_generation_tokens_total counter$/m);
    const generated = Number(/^peft_generation_tokens_total (\d+)$/m.exec(text)![1]);
    expect(generated).toBe(server.engine.stats().generatedTokens);
    expect(text).toMatch(/^peft_http_requests_total\{endpoint="\/v1\/completions",status="200"\} \d+$/m);
    expect(text).toMatch(/^peft_adapter_pool_lookups_total\{result="hit"\} \d+$/m);
  });

  it('cancels a request whose client disconnects', async () => {
    const before = server.engine.stats().cancelled;
    const controller = new AbortController();
    const response = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chef', prompt: 'Once', max_tokens: 400, stream: true, ignore_eos: true }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    for (let i = 0; i < 100 && server.engine.stats().cancelled === before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.engine.stats()).toMatchObject({ cancelled: before + 1, running: 0, openSlots: 0 });
  });
});

describe('a server with a small queue', () => {
  it('answers 429 when the queue is full and 503 while draining, finishing what it holds', async () => {
    const small = createServer(base, { adapters: { dir: path.join(dir, 'adapters') }, maxBatch: 1, maxQueue: 1, modelName: 'm' });
    const smallUrl = (await small.listen()).url;
    const c = new OpenAI({ apiKey: 'none', baseURL: `${smallUrl}/v1`, maxRetries: 0 });
    const long = () => c.completions.create({ model: 'm', prompt: 'Once', max_tokens: 400, ignore_eos: true } as never);
    const until = async (ok: () => boolean) => {
      for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 2));
    };
    const first = long();
    await until(() => small.engine.stats().running === 1);
    const second = long();
    await until(() => small.engine.stats().waiting === 1);
    const third = await long().catch((e: unknown) => e);
    expect(third).toBeInstanceOf(OpenAI.RateLimitError);
    const closing = small.close();
    const late = await fetch(`${smallUrl}/health`).then((r) => r.status).catch(() => 'closed');
    expect([503, 'closed']).toContain(late);
    const [r1, r2] = await Promise.all([first, second]);
    expect(r1.usage!.completion_tokens).toBe(400);
    expect(r2.usage!.completion_tokens).toBe(400);
    await closing;
  });
});
