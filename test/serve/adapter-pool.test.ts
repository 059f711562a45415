// AdapterPool: LoRA adapters for a server, loaded on demand from a directory, checked against the
// base model, kept under a memory budget (least recently used out first, leased ones never), reloaded
// atomically (a lease keeps its version), and refused with a PeftError when damaged or unfit while
// the pool goes on serving the others.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadModel, PeftError, readSafetensors, tensor, writeSafetensors, type Model, type Tensor } from '../../lib';
import { AdapterPool } from '../../lib/serve/adapter-pool';
import { STORIES_HF_DIR } from '../helpers/models';
import { randomizeAdapter } from '../helpers/quant-gguf';

let dir: string;
let base: Model;

/** Saves a LoRA adapter of stories260K (random factors) as `<dir>/<name>`. */
async function saveLora(name: string, seed: number, extra: Record<string, unknown> = {}): Promise<void> {
  const peft = getPeftModel(await loadModel(STORIES_HF_DIR), { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], ...extra }, { seed });
  randomizeAdapter(peft, seed);
  await peft.saveAdapter(path.join(dir, name));
  peft.dispose();
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-pool-'));
  base = await loadModel(STORIES_HF_DIR);
  for (let i = 0; i < 4; i++) await saveLora(`task${i}`, i + 1);
  await saveLora('dora', 9, { use_dora: true });
  await saveLora('rank8', 10, { r: 8, lora_alpha: 16, use_rslora: true });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// q_proj [64, 64] and v_proj [32, 64] in 5 layers, rank 4: (4·64 + 64·4 + 4·64 + 32·4) · 4 bytes · 5.
const BYTES = (4 * 64 + 64 * 4 + 4 * 64 + 32 * 4) * 4 * 5;

describe('AdapterPool', () => {
  it('loads an adapter on first use with its factors and scale, and counts hits and misses', () => {
    const pool = new AdapterPool(base, { dir });
    expect(pool.availableNames()).toEqual(['dora', 'rank8', 'task0', 'task1', 'task2', 'task3']);
    const lease = pool.acquire('task1');
    const q = lease.adapter.modules.get('model.layers.2.self_attn.q_proj')!;
    expect(q.a.shape).toEqual([4, 64]);
    expect(q.b.shape).toEqual([64, 4]);
    expect(q.scale).toBe(2);
    expect(lease.adapter.bytes).toBe(BYTES);
    lease.release();
    pool.acquire('task1').release();
    const r8 = pool.acquire('rank8');
    expect(r8.adapter.modules.get('model.layers.0.self_attn.v_proj')!.scale).toBeCloseTo(16 / Math.sqrt(8), 12);
    r8.release();
    expect(pool.stats()).toMatchObject({ loaded: 2, hits: 1, misses: 2, evictions: 0 });
    expect(pool.stats().hitRate).toBeCloseTo(1 / 3, 12);
    pool.dispose();
  });

  it('keeps within its budget by evicting the least recently used adapter that no request holds', () => {
    const pool = new AdapterPool(base, { dir, budgetBytes: 2.5 * BYTES });
    pool.acquire('task0').release();
    const held = pool.acquire('task1'); // leased: never evicted
    pool.acquire('task2').release();
    expect(pool.loadedNames()).toEqual(['task1', 'task2']);
    expect(pool.stats().evictions).toBe(1); // task0 went
    pool.acquire('task3').release(); // task2 is the least recent unleased one
    expect(pool.loadedNames()).toEqual(['task1', 'task3']);
    expect(held.adapter.modules.get('model.layers.0.self_attn.q_proj')!.a.size).toBe(256); // still valid
    held.release();
    expect(pool.stats().bytes).toBeLessThanOrEqual(2.5 * BYTES);
    pool.dispose();
  });

  it('reloads atomically: a request in flight keeps the old weights, the next one gets the new', async () => {
    const pool = new AdapterPool(base, { dir });
    const before = pool.acquire('task2');
    const oldA = before.adapter.modules.get('model.layers.1.self_attn.q_proj')!.a.toFloat32Array();
    await saveLora('task2', 77); // new weights on disk
    const reloaded = pool.reload('task2');
    expect(reloaded.version).toBe(2);
    expect(Array.from(before.adapter.modules.get('model.layers.1.self_attn.q_proj')!.a.toFloat32Array())).toEqual(Array.from(oldA));
    const after = pool.acquire('task2');
    expect(after.adapter.version).toBe(2);
    expect(Array.from(after.adapter.modules.get('model.layers.1.self_attn.q_proj')!.a.toFloat32Array())).not.toEqual(Array.from(oldA));
    before.release();
    expect(() => before.adapter.modules.get('model.layers.1.self_attn.q_proj')!.a.toFloat32Array()).toThrow(/disposed/);
    after.release();
    pool.dispose();
  });

  it('refuses damaged and unfit adapters with a clear error and goes on serving the others', async () => {
    const pool = new AdapterPool(base, { dir });
    pool.acquire('task0').release();
    const code = (fn: () => unknown) => {
      try {
        fn();
        return 'no error';
      } catch (err) {
        return err instanceof PeftError ? `${err.code}: ${err.message}` : `not a PeftError: ${err}`;
      }
    };
    expect(code(() => pool.acquire('nope'))).toMatch(/^E_CONFIG: Unknown adapter "nope": expected one of dora, rank8, task0/);
    expect(code(() => pool.acquire('dora'))).toMatch(/^E_UNSUPPORTED: .*DoRA/);
    expect(code(() => pool.acquire('../task0'))).toMatch(/^E_ARGUMENT: Expected an adapter name/); // never a path outside dir
    // A truncated weights file, a config whose rank disagrees with the tensors, and an adapter for another model.
    fs.cpSync(path.join(dir, 'task3'), path.join(dir, 'cut'), { recursive: true });
    const weights = path.join(dir, 'cut', 'adapter_model.safetensors');
    fs.writeFileSync(weights, fs.readFileSync(weights).subarray(0, 300));
    expect(code(() => pool.acquire('cut'))).toMatch(/^E_FORMAT/);
    fs.cpSync(path.join(dir, 'task3'), path.join(dir, 'badrank'), { recursive: true });
    const cfg = path.join(dir, 'badrank', 'adapter_config.json');
    fs.writeFileSync(cfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfg, 'utf8')), r: 6 }));
    expect(code(() => pool.acquire('badrank'))).toMatch(/^E_CONFIG: .*rank 6 but its lora_A has 4 rows/);
    // Tensors for a layer this model lacks, or of another model's width.
    for (const [name, rename, reshape] of [['layer9', true, false], ['wide', false, true]] as const) {
      fs.cpSync(path.join(dir, 'task3'), path.join(dir, name), { recursive: true });
      const file = path.join(dir, name, 'adapter_model.safetensors');
      const st = readSafetensors(file);
      const out: Record<string, Tensor> = {};
      for (const k of st.keys()) {
        const t = st.tensor(k);
        const key = rename && k.includes('layers.4.') ? k.replace('layers.4.', 'layers.9.') : k;
        out[key] = reshape && k.includes('layers.0.self_attn.q_proj.lora_A') ? tensor(new Float32Array(4 * 96), [4, 96]) : tensor(t.toFloat32Array(), [...t.shape]);
      }
      await writeSafetensors(file, out);
    }
    expect(code(() => pool.acquire('layer9'))).toMatch(/^E_CONFIG: .*model\.layers\.9\.self_attn\.q_proj, which is not a linear layer of this base model/);
    expect(code(() => pool.acquire('wide'))).toMatch(/^E_SHAPE: Expected lora_A \[r, 64\] .* but received \[4, 96\]/);
    const loaded = pool.loadedNames();
    // A failed reload keeps the version that was there.
    fs.writeFileSync(path.join(dir, 'task0', 'adapter_config.json'), '{ not json');
    expect(code(() => pool.reload('task0'))).toMatch(/^E_FORMAT: .*not valid JSON/);
    expect(pool.loadedNames()).toEqual(loaded);
    const lease = pool.acquire('task0');
    expect(lease.adapter.version).toBe(1);
    lease.release();
    await saveLora('task0', 1); // put it back for other tests
    pool.dispose();
  });

  it('takes an explicit source path for a name, and unloads', () => {
    const pool = new AdapterPool(base);
    expect(() => pool.acquire('task1')).toThrow(/Unknown adapter "task1"/);
    pool.load('mine', path.join(dir, 'task1'));
    const lease = pool.acquire('mine');
    expect(lease.adapter.modules.size).toBe(10);
    lease.release();
    expect(pool.unload('mine')).toBe(true);
    expect(pool.unload('mine')).toBe(false);
    expect(pool.stats().loaded).toBe(0);
    expect(() => new AdapterPool(base, { budgetBytes: 0 })).toThrow(PeftError);
  });
});
