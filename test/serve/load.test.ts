// A bounded load test of the server (loopback, fixed request count): mixed adapters and the base
// model, streamed and whole, clients that disconnect half-way, and a hot reload in the middle. No
// request may fail except those cancelled by their client; afterwards no slot or adapter
// registration is left behind, and six more identical rounds leave no more native allocations
// alive and, once the heap has grown, resident memory flat.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

import OpenAI from 'openai';

import { getPeftModel, loadModel, type Model } from '../../lib';
import { native } from '../../lib/native';
import { createServer, type PeftServer } from '../../lib/serve/server';
import { STORIES_HF_DIR } from '../helpers/models';
import { randomizeAdapter } from '../helpers/quant-gguf';

let dir: string;
let base: Model;
let server: PeftServer;
let url: string;
const ADAPTERS = ['t0', 't1', 't2', 't3'];

// A full collection before each memory reading, so that the readings compare what is alive and not
// how far the collector happened to get (resident memory read without one varied by 26 MiB in CI).
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

async function saveLora(name: string, seed: number): Promise<void> {
  const peft = getPeftModel(await loadModel(STORIES_HF_DIR), { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] }, { seed });
  randomizeAdapter(peft, seed);
  await peft.saveAdapter(path.join(dir, name));
  peft.dispose();
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-load-'));
  for (let i = 0; i < ADAPTERS.length; i++) await saveLora(ADAPTERS[i], 10 + i);
  base = await loadModel(STORIES_HF_DIR);
  server = createServer(base, { adapters: { dir }, maxBatch: 8, maxQueue: 256, modelName: 'base' });
  url = (await server.listen()).url;
});
afterAll(async () => {
  await server.close();
  base.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** One round of `total` requests, `concurrency` at a time; returns how each ended. */
async function round(total: number, concurrency: number, reloadAt: number): Promise<Record<string, number>> {
  const client = new OpenAI({ apiKey: 'none', baseURL: `${url}/v1`, maxRetries: 0 });
  const outcomes: Record<string, number> = {};
  const note = (k: string) => (outcomes[k] = (outcomes[k] ?? 0) + 1);
  let next = 0;
  const one = async (i: number) => {
    const model = i % 5 === 4 ? 'base' : ADAPTERS[i % ADAPTERS.length];
    const prompt = ['Once upon a time', 'The cat', 'Lily wanted to', 'Tom and his dog'][i % 4];
    if (i === reloadAt) {
      await saveLora('t1', 100 + i);
      const r = await fetch(`${url}/admin/adapters/reload`, { method: 'POST', body: JSON.stringify({ name: 't1' }) });
      if (r.status !== 200) throw new Error(`reload answered ${r.status}`);
    }
    if (i % 7 === 3) {
      // A client that disconnects after its first piece.
      const controller = new AbortController();
      const stream = await client.completions.create({ model, prompt, max_tokens: 80, stream: true, ignore_eos: true } as never, { signal: controller.signal });
      try {
        for await (const chunk of stream as unknown as AsyncIterable<unknown>) {
          void chunk;
          controller.abort();
        }
      } catch (err) {
        if (!(err instanceof OpenAI.APIUserAbortError) && (err as Error).name !== 'AbortError') throw err;
      }
      return note('cancelled');
    }
    if (i % 2) {
      const stream = await client.completions.create({ model, prompt, max_tokens: 10 + (i % 13), stream: true, temperature: 0.8, seed: i } as never);
      let reason: string | null = null;
      for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) reason = chunk.choices[0]?.finish_reason ?? reason;
      if (!reason) throw new Error('a stream ended without a finish_reason');
      return note('streamed');
    }
    const r = await client.completions.create({ model, prompt, max_tokens: 10 + (i % 11), temperature: 0 });
    if (!r.choices[0].finish_reason) throw new Error('no finish_reason');
    note('whole');
  };
  const worker = async () => {
    while (next < total) await one(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return outcomes;
}

async function settled(): Promise<void> {
  for (let i = 0; i < 200 && (server.engine.stats().running || server.engine.stats().waiting); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('server under a bounded load', () => {
  it('serves every request but the cancelled ones, leaks no slot or adapter, and keeps memory flat', async () => {
    const first = await round(140, 12, 70);
    expect(first.cancelled).toBe(20);
    expect(first.whole + first.streamed).toBe(120);
    await settled();
    const afterFirst = server.engine.stats();
    expect(afterFirst).toMatchObject({ running: 0, waiting: 0, openSlots: 0, failed: 0 });
    // Only the current versions stay registered (the reloaded t1's old version was dropped).
    expect(afterFirst.nativeAdapters).toBeLessThanOrEqual(ADAPTERS.length);
    // Later rounds: the same native allocations alive after each (the model, the pool's current
    // versions), and resident memory that stops growing.
    const live: { storages: number; bytes: number }[] = [];
    const rss: number[] = [];
    const heap: number[] = [];
    for (let r = 0; r < 6; r++) {
      const again = await round(140, 12, 30 + 20 * r);
      expect(again).toEqual(first);
      await settled();
      expect(server.engine.stats()).toMatchObject({ running: 0, waiting: 0, openSlots: 0, failed: 0 });
      collectGarbage();
      const { storages, bytes } = native.liveStorages();
      live.push({ storages, bytes });
      rss.push(process.memoryUsage.rss());
      heap.push(process.memoryUsage().heapUsed);
    }
    if (process.env.PEFT_LOAD_TRACE) console.log(JSON.stringify({ rss: rss.map((v) => Math.round(v / 2 ** 20)), heap: heap.map((v) => Math.round(v / 2 ** 20)) }));
    // No growth (other suites' garbage in this worker process may be collected meanwhile: that only
    // lowers the counts).
    for (const later of live.slice(1)) {
      expect(later.storages).toBeLessThanOrEqual(live[0].storages);
      expect(later.bytes).toBeLessThanOrEqual(live[0].bytes);
    }
    // Resident memory grows for the first rounds while the allocators warm up: compare the last
    // rounds only. A leak of one request's KV cache per request would add well over 16 MiB here.
    expect((rss[rss.length - 1] - rss[rss.length - 3]) / 2 ** 20).toBeLessThan(16);
    // What the JS heap holds after a full collection stays within 4 MiB over the last four rounds.
    expect((heap[heap.length - 1] - heap[heap.length - 4]) / 2 ** 20).toBeLessThan(4);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/peft_completions_total\{outcome="failed"\} 0/);
  }, 240_000);
});
