import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { ops, PeftError, runtime, tensor, zeros } from '../lib';
import { randomArray, rng } from './helpers/random';

const dist = path.join(__dirname, '..', 'dist');

function runChild(env: Record<string, string>, code: string) {
  const script = `
    try {
      const lib = require(${JSON.stringify(dist)});
      ${code}
    } catch (e) {
      process.stdout.write(JSON.stringify({ error: e.name, code: e.code, message: e.message }));
    }`;
  const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
  expect(out.status).toBe(0);
  return JSON.parse(out.stdout);
}

describe('async calls', () => {
  it('give the same result as the sync call', async () => {
    const random = rng(1);
    const a = tensor(randomArray(random, 70 * 90), [70, 90]);
    const b = tensor(randomArray(random, 50 * 90), [50, 90]);
    const sync = ops.matmul(a, b, { transB: true }).toFloat32Array();
    const pending = ops.matmulAsync(a, b, { transB: true });
    expect(pending).toBeInstanceOf(Promise);
    expect(Array.from((await pending).toFloat32Array())).toEqual(Array.from(sync));
  });

  it('keep the event loop free: a timer fires while a long product runs', async () => {
    const n = 1536;
    const a = tensor(randomArray(rng(2), n * n), [n, n]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    const started = Date.now();
    await ops.matmulAsync(a, a);
    const elapsed = Date.now() - started;
    clearInterval(timer);
    // The product takes far longer than one tick; a blocked loop would count at most one.
    expect(elapsed).toBeGreaterThan(20);
    expect(ticks).toBeGreaterThan(3);
  });

  it('lease their tensors: writing, reading or disposing an output in use is E_BUSY', async () => {
    const n = 1024;
    const a = tensor(randomArray(rng(3), n * n), [n, n]);
    const out = zeros([n, n]);
    const pending = ops.matmulAsync(a, a, { out });
    const busy = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e instanceof PeftError ? e.code : String(e);
      }
      return 'no error';
    };
    expect(busy(() => out.dispose())).toBe('E_BUSY');
    expect(busy(() => ops.matmul(out, a))).toBe('E_BUSY');
    expect(busy(() => ops.matmul(a, a, { out }))).toBe('E_BUSY');
    // Reading an input that the pending call only reads is fine.
    expect(ops.matmul(tensor([[1]]), tensor([[2]])).toFloat32Array()[0]).toBe(2);
    const concurrentRead = ops.matmul(a, tensor(new Float32Array(n), [n, 1]));
    expect(concurrentRead.shape).toEqual([n, 1]);
    expect(await pending).toBe(out);
    out.dispose(); // free again once the call finished
  });

  it('run concurrently on different tensors with correct results', async () => {
    const random = rng(4);
    const pairs = [0, 1, 2, 3].map(() => [tensor(randomArray(random, 300 * 200), [300, 200]), tensor(randomArray(random, 200 * 100), [200, 100])]);
    const expected = pairs.map(([a, b]) => ops.matmul(a, b).toFloat32Array());
    const results = await Promise.all(pairs.map(([a, b]) => ops.matmulAsync(a, b)));
    results.forEach((r, i) => expect(Array.from(r.toFloat32Array())).toEqual(Array.from(expected[i])));
  });

  it('reject with a PeftError whose stack shows the calling line', async () => {
    const a = tensor([[1, 2]]);
    // Shapes are checked on the JS thread; a native failure inside the worker also rejects.
    await expect(ops.matmulAsync(a, a)).rejects.toMatchObject({ code: 'E_SHAPE' });
    const err = await ops.matmulAsync(a, a).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeftError);
    expect((err as Error).stack).toContain('async.test.ts');
  });

  it('run the optimizers off the event loop too', async () => {
    const p = tensor([1, 2, 3]);
    const g = tensor([0.5, 0.5, 0.5]);
    await ops.sgdAsync([p], [g], null, { lr: 0.1 });
    expect(Array.from(p.toFloat32Array())).toEqual([0.95, 1.95, 2.95].map(Math.fround));
    expect(await ops.clipGradNormAsync([g], 100)).toBeCloseTo(Math.sqrt(0.75), 6);
    const m = zeros([3]);
    const v = zeros([3]);
    await ops.adamwAsync([p], [g], { expAvg: [m], expAvgSq: [v] }, { lr: 0.1, step: 1, weightDecay: 0 });
    // First AdamW step moves each weight by lr·sign(g) (up to eps).
    expect(Array.from(p.toFloat32Array()).map((x) => Number(x.toFixed(4)))).toEqual([0.85, 1.85, 2.85]);
  });
});

describe('threads and instruction sets', () => {
  it('use one thread per physical core by default, PEFT_NUM_THREADS overrides', () => {
    const cores = runtime.cpuFeatures().physicalCores as number;
    expect(runChild({ PEFT_NUM_THREADS: '' }, 'process.stdout.write(JSON.stringify(lib.runtime.numThreads()))')).toBe(cores);
    expect(runChild({ PEFT_NUM_THREADS: '1' }, 'process.stdout.write(JSON.stringify(lib.runtime.numThreads()))')).toBe(1);
    expect(runChild({ PEFT_NUM_THREADS: '3' }, 'process.stdout.write(JSON.stringify(lib.runtime.numThreads()))')).toBe(3);
  });

  it('PEFT_ISA forces a variant, and refuses one the CPU cannot run', () => {
    const show = 'process.stdout.write(JSON.stringify(lib.runtime.getIsa()))';
    for (const isa of runtime.supportedIsas()) expect(runChild({ PEFT_ISA: isa }, show)).toBe(isa);
    // Without PEFT_ISA: AVX-512 when the CPU has it, else AVX2, else scalar (avx512bf16 is opt-in).
    const supported = runtime.supportedIsas();
    expect(runChild({ PEFT_ISA: '' }, show)).toBe(supported.includes('avx512') ? 'avx512' : supported.includes('avx2') ? 'avx2' : 'scalar');
    const bogus = runChild({ PEFT_ISA: 'sse9' }, show);
    expect(bogus).toMatchObject({ error: 'PeftError', code: 'E_ARGUMENT' });
    expect(bogus.message).toMatch(/Expected one of scalar, avx2, avx512, avx512bf16 .* but received "sse9"/);
    for (const isa of ['avx2', 'avx512', 'avx512bf16'].filter((i) => !runtime.supportedIsas().includes(i as never))) {
      const refused = runChild({ PEFT_ISA: isa }, show);
      expect(refused).toMatchObject({ error: 'PeftError', code: 'E_UNSUPPORTED' });
      expect(refused.message).toContain(`Instruction set ${isa} is not supported by this CPU`);
    }
  });

  it('load in worker_threads, each with its own instance', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { tensor, ops } = require(workerData.dist);
      const c = ops.matmul(tensor([[1, 2], [3, 4]]), tensor([[5], [6]]));
      parentPort.postMessage(Array.from(c.toFloat32Array()));
    `;
    const run = () =>
      new Promise<number[]>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { dist } });
        w.once('message', resolve);
        w.once('error', reject);
      });
    expect(await Promise.all([run(), run()])).toEqual([
      [17, 39],
      [17, 39],
    ]);
  });
});
