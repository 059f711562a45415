// Concurrency: two models training at once in one process each get exactly the numbers they get
// alone; a second call on a model that is busy (in JS between native calls, or inside one) is
// refused with E_BUSY; worker_threads each load the addon and compute what the main thread does;
// terminating a worker in the middle of a native call leaves the process running.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { exportMerged, getPeftModel, loadModel, PeftError, tensor, Trainer, type Model, type PeftModel } from '../../lib';
import { Dataset } from '../../lib/data/dataset';
import type { Example } from '../../lib/data/types';
import { ensureBuilt } from '../helpers/built';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { repoRoot } from '../helpers/workspace';

/** Token sequences as a data set (loss on every token but the first). */
function tokenDataset(seqs: number[][]): Dataset {
  const examples: Example[] = seqs.map((ids, i) => ({
    inputIds: ids,
    labels: ids.map((t, j) => (j === 0 ? -100 : t)),
    sources: [{ file: '<test>', line: i + 1 }],
    segments: [0],
    truncated: false,
  }));
  const lengths = seqs.map((s) => s.length);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  return new Dataset(
    examples,
    {
      source: '<test>', format: 'text', records: seqs.length, examples: seqs.length, tokens, lossTokens: tokens - seqs.length,
      truncated: 0, dropped: 0, packed: false, maxSeqLength: 64, minLength: Math.min(...lengths), maxLength: Math.max(...lengths), meanLength: tokens / seqs.length,
    },
    0,
  );
}

/** Sequences of stories260K token ids (vocabulary 512), different for each seed. */
const sequences = (seed: number, count: number) =>
  Array.from({ length: count }, (_, i) => Array.from({ length: 8 + ((i + seed) % 9) }, (_, j) => (seed * 131 + i * 37 + j * 11) % 500 + 3));

interface Job {
  model: string;
  lora: Record<string, unknown>;
  seed: number;
  data: number[][];
}
const JOBS: Job[] = [
  { model: STORIES_HF_DIR, lora: { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear' }, seed: 1, data: sequences(1, 12) },
  { model: STORIES_GGUF, lora: { peft_type: 'LORA', r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj', 'down_proj'] }, seed: 2, data: sequences(2, 10) },
];

async function prepare(job: Job): Promise<{ peft: PeftModel; trainer: Trainer }> {
  const peft = getPeftModel(await loadModel(job.model), job.lora, { seed: job.seed });
  const trainer = new Trainer(peft, { train_dataset: tokenDataset(job.data), per_device_train_batch_size: 3, max_steps: 8, learning_rate: 3e-3, seed: job.seed, warn: () => {} });
  return { peft, trainer };
}

const values = (peft: PeftModel) => Object.fromEntries(Object.entries(peft.trainableParameters()).map(([n, t]) => [n, Array.from(t.toFloat32Array())]));

describe('two models in one process', () => {
  it('train in parallel (two Trainer.train() at once) and each gets the losses and weights it gets alone, bit for bit', async () => {
    const alone: { losses: number[]; values: Record<string, number[]>; text: number[] }[] = [];
    for (const job of JOBS) {
      const { peft, trainer } = await prepare(job);
      const r = await trainer.train();
      alone.push({ losses: r.losses, values: values(peft), text: (await peft.generate([1, 403, 407], { maxNewTokens: 12 })).tokens });
      peft.dispose();
    }
    expect(alone[0].losses).not.toEqual(alone[1].losses);

    const runs = await Promise.all(JOBS.map(prepare));
    const results = await Promise.all(runs.map((r) => r.trainer.train()));
    const texts = await Promise.all(runs.map((r) => r.peft.generate([1, 403, 407], { maxNewTokens: 12 })));
    results.forEach((r, i) => {
      expect(r.losses).toHaveLength(8);
      expect(r.losses).toEqual(alone[i].losses);
      expect(values(runs[i].peft)).toEqual(alone[i].values);
      expect(texts[i].tokens).toEqual(alone[i].text);
    });
    runs.forEach((r) => r.peft.dispose());
  });

  it('interleave hand-written loops of loss and optimizer steps without touching each other', async () => {
    const loop = async (job: Job, steps: number) => {
      const peft = getPeftModel(await loadModel(job.model), job.lora, { seed: job.seed });
      const losses: number[] = [];
      for (let s = 0; s < steps; s++) {
        const batch = job.data[s % job.data.length];
        const { loss, grads } = await peft.loss([batch]);
        losses.push(loss);
        // Plain SGD, in JS: the update itself is not what is under test here.
        for (const [name, p] of Object.entries(peft.trainableParameters())) {
          const g = grads[name].toFloat32Array();
          peft.setParameterValue(name, tensor(p.toFloat32Array().map((v, i) => v - 0.05 * g[i]), p.shape));
        }
        await new Promise((resolve) => setImmediate(resolve)); // let the other loop in between steps
      }
      peft.dispose();
      return losses;
    };
    const alone = [await loop(JOBS[0], 6), await loop(JOBS[1], 6)];
    expect(await Promise.all([loop(JOBS[0], 6), loop(JOBS[1], 6)])).toEqual(alone);
  });
});

/** The code of a synchronous throw or an asynchronous rejection of `fn`. */
async function codeOf(fn: () => unknown): Promise<string> {
  try {
    const r = fn();
    if (r && typeof (r as Promise<unknown>).then === 'function') await r;
    else if (r && typeof (r as AsyncIterator<unknown>).next === 'function') await (r as AsyncIterator<unknown>).next();
  } catch (e) {
    return e instanceof PeftError ? e.code : `not a PeftError: ${String(e)}`;
  }
  return 'no error';
}

describe('one model, one call at a time', () => {
  let tmp: string;
  let model: Model;
  let peft: PeftModel;
  const ids = [[1, 403, 407, 260, 395, 261, 300, 410]];
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-busy-'));
    model = await loadModel(STORIES_HF_DIR);
    peft = getPeftModel(model, { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] }, { seed: 3 });
  });
  afterAll(() => {
    peft.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Every public call on the model, each expected to be refused while another call runs. */
  const calls: Record<string, () => unknown> = {
    'PeftModel.forward': () => peft.forward(ids),
    'PeftModel.loss': () => peft.loss(ids),
    'PeftModel.generate': () => peft.generate([1, 403], { maxNewTokens: 2 }),
    'PeftModel.stream': () => peft.stream([1, 403], { maxNewTokens: 2 }),
    'PeftModel.saveAdapter': () => peft.saveAdapter(path.join(tmp, 'adapter')),
    'PeftModel.withAdaptersDisabled': () => peft.withAdaptersDisabled(() => 1),
    'PeftModel.addAdapter': () => peft.addAdapter('other', { peft_type: 'LORA', r: 2, target_modules: ['q_proj'] }),
    'PeftModel.setAdapter': () => peft.setAdapter('default'),
    'PeftModel.deleteAdapter': () => peft.deleteAdapter('default'),
    'PeftModel.merge': () => peft.merge(),
    'PeftModel.unmerge': () => peft.unmerge(),
    'PeftModel.mergeAndUnload': () => peft.mergeAndUnload(),
    'PeftModel.train': () => peft.train(),
    'PeftModel.eval': () => peft.eval(),
    'PeftModel.dispose': () => peft.dispose(),
    'Model.forward': () => model.forward(ids),
    'Model.loss': () => model.loss(ids),
    'Model.generate': () => model.generate([1, 403], { maxNewTokens: 2 }),
    'Model.stream': () => model.stream([1, 403], { maxNewTokens: 2 }),
    'Model.setGradientCheckpointing': () => model.setGradientCheckpointing(false),
    'Model.dispose': () => model.dispose(),
    'Trainer.train': () => new Trainer(peft, { train_dataset: tokenDataset(sequences(5, 4)), max_steps: 1 }).train(),
    exportMerged: () => exportMerged(peft, path.join(tmp, 'merged')),
  };

  async function expectAllBusy(during: string): Promise<void> {
    const codes: Record<string, string> = {};
    for (const [name, call] of Object.entries(calls)) codes[name] = await codeOf(call);
    expect({ during, codes }).toEqual({ during, codes: Object.fromEntries(Object.keys(calls).map((n) => [n, 'E_BUSY'])) });
  }

  it('refuses every call while forward() runs, and takes them again after', async () => {
    const before = Array.from((await peft.forward(ids)).toFloat32Array());
    const pending = peft.forward(ids);
    await expectAllBusy('forward()');
    expect(Array.from((await pending).toFloat32Array())).toEqual(before);
    // Free again: the refused calls changed nothing.
    expect(Array.from((await peft.forward(ids)).toFloat32Array())).toEqual(before);
    expect(peft.adapterNames()).toEqual(['default']);
  });

  it('refuses them between the native steps of generate(), a stream and a training run too', async () => {
    const reference = await peft.generate([1, 403], { maxNewTokens: 16 });
    const generating = peft.generate([1, 403], { maxNewTokens: 16 });
    await new Promise((resolve) => setImmediate(resolve)); // a step has finished, the next is in flight or about to be
    await expectAllBusy('generate()');
    expect((await generating).tokens).toEqual(reference.tokens);

    const stream = peft.stream([1, 403], { maxNewTokens: 16 });
    await stream.next();
    await expectAllBusy('stream()');
    await stream.return!(undefined); // what `break` in for-await does
    expect(await codeOf(() => peft.forward(ids))).toBe('no error');

    // The Trainer holds the model for its whole run; its callbacks may still use it.
    let inCallback = 'not called';
    const training = new Trainer(peft, {
      train_dataset: tokenDataset(sequences(4, 6)),
      max_steps: 3,
      per_device_train_batch_size: 2,
      callbacks: { onStep: async ({ step }) => void (step === 1 && (inCallback = await codeOf(() => peft.generate([1], { maxNewTokens: 2 })))) },
    }).train();
    await new Promise((resolve) => setImmediate(resolve));
    await expectAllBusy('Trainer.train()');
    await training;
    expect(inCallback).toBe('no error');
  });

  it('names the running call and the refused one', async () => {
    const pending = peft.generate([1, 403], { maxNewTokens: 4 });
    const err = await peft.forward(ids).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeftError);
    expect((err as Error).message).toBe('The model is busy with generate(); await it before calling forward() (one call at a time per model)');
    await pending;
  });

  it('the native model refuses every method, synchronous ones too, while one of its asynchronous calls runs', async () => {
    const nativeModel = model.nativeModel as unknown as Record<string, (...args: unknown[]) => unknown>;
    const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(nativeModel)).filter((m) => m !== 'constructor');
    expect(methods).toEqual(expect.arrayContaining(['forward', 'lossBackward', 'step', 'resetCache', 'parameterNames', 'addLora', 'setSelection', 'mergeAdapter', 'dispose']));
    const idsTensor = tensor(ids, undefined, 'i32');
    const pending = model.nativeModel.forwardAsync(idsTensor.handle, null, false);
    const codes = Object.fromEntries(methods.map((m) => [m, (() => {
      try {
        const r = nativeModel[m]();
        if (r instanceof Promise) r.catch(() => undefined);
        return 'no error';
      } catch (e) {
        return (e as PeftError).code;
      }
    })()]));
    expect(codes).toEqual(Object.fromEntries(methods.map((m) => [m, 'E_BUSY'])));
    await pending;
    expect(model.nativeModel.parameterNames().length).toBeGreaterThan(0);
  });

  it('after dispose() every call is E_DISPOSED, and a second dispose() is harmless', async () => {
    const m = await loadModel(STORIES_GGUF);
    const p = getPeftModel(m, { peft_type: 'LORA', r: 2, target_modules: ['q_proj'] });
    const weight = m.parameter('model.norm.weight');
    p.dispose();
    p.dispose();
    expect(weight.disposed).toBe(true);
    expect(await codeOf(() => p.forward(ids))).toBe('E_DISPOSED');
    expect(await codeOf(() => m.forward(ids))).toBe('E_DISPOSED');
    expect(await codeOf(() => m.generate([1], { maxNewTokens: 1 }))).toBe('E_DISPOSED');
    expect(await codeOf(() => m.parameterNames())).toBe('E_DISPOSED');
  });
});

describe('worker_threads', () => {
  const dist = path.join(repoRoot, 'dist');
  beforeAll(() => ensureBuilt());

  it('each load the addon and a model, and compute the main thread\'s logits and loss bit for bit', async () => {
    const ids = [[1, 403, 407, 260, 395, 261, 300, 410, 5, 77]];
    const model = await loadModel(STORIES_HF_DIR);
    const logits = Array.from((await model.forward(ids)).toFloat32Array());
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: false }, { seed: 7 });
    const loss = (await peft.loss(ids)).loss;
    peft.dispose();
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const lib = require(workerData.dist);
      (async () => {
        const model = await lib.loadModel(workerData.model);
        const logits = Array.from((await model.forward(workerData.ids)).toFloat32Array());
        const sync = Array.from(new lib.Tensor(model.nativeModel.forward(lib.tensor(workerData.ids, undefined, 'i32').handle, null, false)).toFloat32Array());
        const peft = lib.getPeftModel(model, workerData.lora, { seed: 7 });
        const loss = (await peft.loss(workerData.ids)).loss;
        peft.dispose();
        parentPort.postMessage({ logits, sync, loss, storages: lib.runtime.liveStorages().storages >= 0 });
      })().catch((e) => parentPort.postMessage({ error: e.stack }));
    `;
    const lora = { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear', init_lora_weights: false };
    const run = (file: string) =>
      new Promise<{ logits: number[]; sync: number[]; loss: number; error?: string }>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { dist, model: file, ids, lora } });
        w.once('message', (m) => void w.terminate().then(() => resolve(m)));
        w.once('error', reject);
      });
    const results = await Promise.all([run(STORIES_HF_DIR), run(STORIES_HF_DIR), run(STORIES_GGUF)]);
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.logits).toEqual(logits);
      expect(r.sync).toEqual(logits);
      expect(r.loss).toBe(loss);
    }
  });

  it('terminated in the middle of native calls (async and sync, many times) leave the process running', () => {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'terminate-child.js')], {
      encoding: 'utf8',
      env: { ...process.env, TERMINATE_DIST: dist, TERMINATE_MODEL: STORIES_HF_DIR, TERMINATE_ROUNDS: '12' },
      timeout: 240_000,
    });
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith('terminated '))).toHaveLength(24);
    expect(lines[lines.length - 1]).toBe('main thread still computes: ok');
  }, 300_000);
});
