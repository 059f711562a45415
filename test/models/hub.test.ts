import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { AdapterPool, getPeftModel, loadModel, parseHubReference, PeftError, resolveAdapter, resolveModel } from '../../lib';
import { STORIES_HF_DIR } from '../helpers/models';

const HF_DIR = STORIES_HF_DIR;
const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');

/** A local server with the hub's URL layout: /<owner>/<name>/resolve/<revision>/<file>. */
interface Hub {
  endpoint: string;
  requests: string[];
  files: Map<string, Buffer>;
  lie: Set<string>; // files served with a wrong sha256
  close(): Promise<void>;
}

async function startHub(): Promise<Hub> {
  const files = new Map<string, Buffer>();
  const requests: string[] = [];
  const lie = new Set<string>();
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? '');
    const key = m ? `${m[1]}@${decodeURIComponent(m[2])}:${decodeURIComponent(m[3])}` : '';
    const body = files.get(key);
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    if (key.endsWith('broken.bin')) {
      res.writeHead(200, { 'content-length': String(body.length * 2) });
      res.write(body, () => res.destroy()); // fewer bytes than announced, then the connection drops
      return;
    }
    const digest = lie.has(key) ? '0'.repeat(64) : sha256(body);
    res.writeHead(200, { 'content-length': String(body.length), 'x-linked-etag': `"${digest}"`, etag: `"${digest}"` });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    files,
    lie,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof PeftError ? e.code : String(e);
  }
  return 'no error';
}

describe('resolveModel', () => {
  let hub: Hub;
  let cacheDir: string;
  beforeAll(async () => {
    hub = await startHub();
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'model.safetensors']) {
      hub.files.set(`tiny/stories@main:${f}`, fs.readFileSync(path.join(HF_DIR, f)));
    }
  });
  afterAll(() => hub.close());
  beforeEach(() => {
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-cache-'));
    hub.requests.length = 0;
  });

  it('parses hf: references', () => {
    expect(parseHubReference('hf:owner/name')).toEqual({ repo: 'owner/name', file: undefined, revision: 'main' });
    expect(parseHubReference('hf:ggml-org/models/tinyllamas/stories260K.gguf@v1.0')).toEqual({
      repo: 'ggml-org/models',
      file: 'tinyllamas/stories260K.gguf',
      revision: 'v1.0',
    });
    expect(() => parseHubReference('hf:owner')).toThrow(PeftError);
    expect(() => parseHubReference('hf:owner/name/../../etc/passwd')).toThrow(PeftError);
  });

  it('downloads a repository once, checks sha256, then serves it from the cache offline', async () => {
    const dir = await resolveModel('hf:tiny/stories', { cacheDir, endpoint: hub.endpoint, progress: false });
    for (const f of ['config.json', 'tokenizer.json', 'model.safetensors']) {
      expect(sha256(fs.readFileSync(path.join(dir, f)))).toBe(sha256(fs.readFileSync(path.join(HF_DIR, f))));
    }
    expect(hub.requests.some((r) => r.endsWith('/model.safetensors'))).toBe(true);
    hub.requests.length = 0;
    expect(await resolveModel('hf:tiny/stories', { cacheDir, endpoint: hub.endpoint })).toBe(dir);
    // Only optional files that the hub does not have are asked for again.
    expect(hub.requests.filter((r) => !/special_tokens_map|index\.json/.test(r))).toEqual([]);
    expect(await resolveModel('hf:tiny/stories', { cacheDir, offline: true })).toBe(dir);
    expect(fs.readdirSync(dir).filter((f) => f.includes('.part'))).toEqual([]);
  });

  it('downloads a single file reference', async () => {
    const file = await resolveModel('hf:tiny/stories/model.safetensors', { cacheDir, endpoint: hub.endpoint, progress: false });
    expect(path.basename(file)).toBe('model.safetensors');
    expect(fs.statSync(file).size).toBe(fs.statSync(path.join(HF_DIR, 'model.safetensors')).size);
  });

  it('fetches every shard of a sharded checkpoint', async () => {
    hub.files.set('tiny/sharded@main:config.json', Buffer.from('{}'));
    hub.files.set('tiny/sharded@main:tokenizer.json', Buffer.from('{}'));
    hub.files.set('tiny/sharded@main:model.safetensors.index.json', Buffer.from(JSON.stringify({ weight_map: { a: 'a.safetensors', b: 'b.safetensors', c: 'a.safetensors' } })));
    hub.files.set('tiny/sharded@main:a.safetensors', Buffer.from('A'));
    hub.files.set('tiny/sharded@main:b.safetensors', Buffer.from('B'));
    const dir = await resolveModel('hf:tiny/sharded', { cacheDir, endpoint: hub.endpoint, progress: false });
    expect(fs.readFileSync(path.join(dir, 'b.safetensors'), 'utf8')).toBe('B');
    expect(hub.requests.filter((r) => r.endsWith('/a.safetensors'))).toHaveLength(1);
  });

  it('refuses a download whose sha256 differs, leaving nothing behind', async () => {
    hub.lie.add('tiny/stories@main:model.safetensors');
    try {
      const err = await resolveModel('hf:tiny/stories/model.safetensors', { cacheDir, endpoint: hub.endpoint, progress: false }).catch((e) => e);
      expect(err).toBeInstanceOf(PeftError);
      expect(err.message).toMatch(/sha256 [0-9a-f]{64} but the hub reports 0{64}/);
    } finally {
      hub.lie.clear();
    }
    const leftovers = fs.readdirSync(cacheDir, { recursive: true }).map(String);
    expect(leftovers.filter((f) => f.endsWith('.safetensors') || f.includes('.part'))).toEqual([]);
  });

  it('reports truncated downloads, missing files, unreachable hubs and offline misses as E_IO', async () => {
    hub.files.set('tiny/stories@main:broken.bin', Buffer.from('abc'));
    expect(await codeOf(resolveModel('hf:tiny/stories/broken.bin', { cacheDir, endpoint: hub.endpoint, progress: false }))).toBe('E_IO');
    const missing = await resolveModel('hf:tiny/nothing', { cacheDir, endpoint: hub.endpoint }).catch((e) => e);
    expect(missing.message).toMatch(/Could not download http:\/\/127\.0\.0\.1:\d+\/tiny\/nothing\/resolve\/main\/config\.json: HTTP 404/);
    expect(await codeOf(resolveModel('hf:tiny/stories', { cacheDir, endpoint: 'http://127.0.0.1:9' }))).toBe('E_IO');
    expect(await codeOf(resolveModel('hf:tiny/stories', { cacheDir, offline: true }))).toBe('E_IO');
  });

  it('uses local paths as they are, without the network', async () => {
    expect(await resolveModel(HF_DIR)).toBe(HF_DIR);
    expect(await codeOf(resolveModel(path.join(HF_DIR, 'nope')))).toBe('E_IO');
  });
});

describe('resolveAdapter and AdapterPool.fetch', () => {
  let hub: Hub;
  let cacheDir: string;
  let adapterDir: string;
  beforeAll(async () => {
    hub = await startHub();
    adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-hub-adapter-'));
    const peft = getPeftModel(await loadModel(HF_DIR), { peft_type: 'LORA', r: 2, target_modules: ['q_proj'] }, { seed: 3 });
    await peft.saveAdapter(adapterDir);
    peft.dispose();
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
      hub.files.set(`tiny/adapters@main:poet/${f}`, fs.readFileSync(path.join(adapterDir, f)));
      hub.files.set(`tiny/one-adapter@v1:${f}`, fs.readFileSync(path.join(adapterDir, f)));
    }
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-hub-cache-'));
  });
  afterAll(async () => {
    await hub.close();
    fs.rmSync(adapterDir, { recursive: true, force: true });
    fs.rmSync(cacheDir, { recursive: true, force: true });
  });

  it('downloads an adapter (a repository, or a subfolder of one) once, then works offline', async () => {
    const sub = await resolveAdapter('hf:tiny/adapters/poet', { cacheDir, endpoint: hub.endpoint, progress: false });
    expect(fs.readFileSync(path.join(sub, 'adapter_model.safetensors'))).toEqual(fs.readFileSync(path.join(adapterDir, 'adapter_model.safetensors')));
    const whole = await resolveAdapter('hf:tiny/one-adapter@v1', { cacheDir, endpoint: hub.endpoint, progress: false });
    expect(fs.existsSync(path.join(whole, 'adapter_config.json'))).toBe(true);
    const asked = hub.requests.length;
    expect(await resolveAdapter('hf:tiny/adapters/poet', { cacheDir, offline: true })).toBe(sub);
    expect(hub.requests.length).toBe(asked);
    expect(await codeOf(resolveAdapter('hf:tiny/adapters/other', { cacheDir, offline: true }))).toBe('E_IO');
    const model = await loadModel(HF_DIR);
    const pool = new AdapterPool(model);
    const fetched = await pool.fetch('poet', 'hf:tiny/adapters/poet', { cacheDir, offline: true });
    expect(fetched.modules.get('model.layers.0.self_attn.q_proj')!.a.shape).toEqual([2, 64]);
    expect(pool.acquire('poet').adapter).toBe(fetched);
    pool.dispose();
    model.dispose();
  });
});
