// The Trainer: gradient accumulation equals the big batch, the optimizer step matches AdamW written
// out here, exact resume, seeds, early stopping with the best checkpoint, cancellation, atomic saves,
// bad input; and one real run on stories260K that keeps the event loop free.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, loadModel, readRunLog, readSafetensors, Trainer, type PeftModel, type TrainingArguments } from '../../lib';
import { Dataset } from '../../lib/data/dataset';
import type { Example } from '../../lib/data/types';
import * as safetensorsIo from '../../lib/io/safetensors';
import { accumulateGradients, microBatch } from '../../lib/train/accumulate';
import { readTrainerState } from '../../lib/train/checkpoint';
import { STORIES_HF_DIR } from '../helpers/models';
import { tinyLlama } from '../helpers/tiny-llama';

/** A data set of token sequences (loss on every token but the first), without a tokenizer. */
function tokenDataset(seqs: number[][], padId = 0): Dataset {
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
    padId,
  );
}

/** 12 sequences of lengths 3..7 over the tiny vocabulary (11 tokens). */
const SEQS = Array.from({ length: 12 }, (_, i) => Array.from({ length: 3 + (i % 5) }, (_, j) => (2 * i + 3 * j + 1) % 11));
const EVAL_SEQS = [[1, 4, 7, 10, 2], [3, 6, 9, 1, 4, 7], [5, 8]];

const LORA = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] } as const;
const P_TUNING = { peft_type: 'P_TUNING', num_virtual_tokens: 2, encoder_hidden_size: 6 } as const;

function tinyPeft(config: Record<string, unknown> = LORA, seed = 1, model = tinyLlama().model): PeftModel {
  return getPeftModel(model, config, { seed });
}

function values(peft: PeftModel): Record<string, number[]> {
  return Object.fromEntries(Object.entries(peft.trainableParameters()).map(([n, t]) => [n, [...t.toFloat32Array()]]));
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-trainer-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const outDir = (name: string) => path.join(tmp, name);

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));

describe('gradient accumulation', () => {
  it('micro-batches of different token counts give the big batch gradient and loss', async () => {
    // Rows of different lengths: the micro-batches have 2, 11 and 4 target tokens, the big batch pads all to 7.
    const rows = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10, 1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 1]];
    const data = tokenDataset(rows);
    const batches = [...data.batches(4, { shuffle: false })];
    const big = microBatch(batches[0]);
    const micro = [[0], [1, 2], [3]].map((idx) => microBatch(padRows(data, idx)));

    const peft = tinyPeft({ ...LORA, init_lora_weights: false });
    const reference = await peft.loss(big.ids, big.labels, { attentionMask: big.attentionMask });
    const refGrads = Object.fromEntries(Object.entries(reference.grads).map(([n, g]) => [n, g.toFloat32Array()]));
    expect(micro.map((m) => m.targets)).toEqual([2, 11, 4]);

    const acc = await accumulateGradients(peft, micro);
    expect(acc.targets).toBe(17);
    expect(Math.abs(acc.loss - reference.loss)).toBeLessThan(1e-6);
    for (const [name, g] of Object.entries(acc.grads)) {
      const ref = refGrads[name];
      const scale = Math.max(...ref.map(Math.abs));
      expect(scale).toBeGreaterThan(0);
      expect(maxAbsDiff(g.toFloat32Array(), ref) / scale).toBeLessThan(1e-5);
    }
  });

  it.each([
    ['LoRA', { ...LORA, init_lora_weights: false }],
    ['P-tuning (gradients through a prompt encoder)', P_TUNING],
  ])('a step of 2 × 2 sequences updates the weights as one batch of 4 does: %s', async (_, config) => {
    const data = tokenDataset(SEQS);
    const common: TrainingArguments = { train_dataset: data, optimizer: 'sgd', learning_rate: 0.5, max_grad_norm: 0, max_steps: 1, lr_scheduler_type: 'constant' };
    const a = tinyPeft(config);
    const b = tinyPeft(config);
    const ra = await new Trainer(a, { ...common, per_device_train_batch_size: 4 }).train();
    const rb = await new Trainer(b, { ...common, per_device_train_batch_size: 2, gradient_accumulation_steps: 2 }).train();
    expect(Math.abs(ra.losses[0] - rb.losses[0])).toBeLessThan(1e-6);
    const va = values(a);
    const vb = values(b);
    const v0 = values(tinyPeft(config));
    for (const name of Object.keys(va)) {
      expect(maxAbsDiff(va[name], vb[name])).toBeLessThan(1e-6);
      expect(maxAbsDiff(va[name], v0[name])).toBeGreaterThan(1e-4); // the step moved every tensor
    }
  });
});

/** The rows `indices` of a data set as one padded batch. */
function padRows(data: Dataset, indices: number[]) {
  const rows = indices.map((i) => data.examples[i]);
  const width = Math.max(...rows.map((r) => r.inputIds.length));
  const pad = (v: number[], fill: number) => v.concat(new Array<number>(width - v.length).fill(fill));
  return {
    ids: rows.map((r) => pad(r.inputIds, 0)),
    labels: rows.map((r) => pad(r.labels, -100)),
    attentionMask: rows.map((r) => pad(r.inputIds.map(() => 1), 0)),
    indices,
    position: { epoch: 0, index: 0 },
    next: { epoch: 0, index: 1 },
  };
}

describe('the optimizer step', () => {
  it('is AdamW with clipping, weight decay off biases and norms, and LoRA+ (checked against a scalar AdamW)', async () => {
    const config = { ...LORA, bias: 'all', modules_to_save: ['model.norm'], init_lora_weights: false };
    const make = () => tinyPeft(config, 1, tinyLlama({ bias: true }).model);
    const args = {
      learning_rate: 0.01, weight_decay: 0.1, adam_beta1: 0.8, adam_beta2: 0.95, adam_epsilon: 1e-6, max_grad_norm: 0.05,
      loraplus_lr_ratio: 4, lr_scheduler_type: 'constant', per_device_train_batch_size: 3, seed: 7,
    } as const;
    const data = tokenDataset(SEQS);
    // The reference: the first batch of the seeded order, its gradient, and AdamW written out in float64.
    const ref = make();
    const p0 = values(ref);
    const first = microBatch(data.batches(3, { seed: 7 }).next().value!);
    const { grads } = await ref.loss(first.ids, first.labels, { attentionMask: first.attentionMask });
    const g = Object.fromEntries(Object.entries(grads).map(([n, t]) => [n, [...t.toFloat32Array()]]));
    const norm = Math.sqrt(Object.values(g).flat().reduce((s, v) => s + v * v, 0));
    const clip = Math.min(1, args.max_grad_norm / (norm + 1e-6));
    expect(clip).toBeLessThan(1); // clipping is exercised

    const out = outDir('adamw');
    const trained = make();
    const r = await new Trainer(trained, { ...args, train_dataset: data, max_steps: 1, output_dir: out }).train();
    expect(r.log_history[0].grad_norm).toBeCloseTo(norm, 5);
    const after = values(trained);
    const moments = readSafetensors(path.join(out, 'checkpoint-1', 'optimizer.safetensors'));
    for (const [name, p] of Object.entries(p0)) {
      const oneDim = trained.trainableParameters()[name].shape.length === 1;
      const lr = args.learning_rate * (name.includes('.lora_B.') || oneDim ? args.loraplus_lr_ratio : 1);
      const wd = name.includes('bias') || name.includes('norm') ? 0 : args.weight_decay;
      const expected = p.map((w, i) => {
        const gi = g[name][i] * clip;
        const m = (1 - args.adam_beta1) * gi;
        const v = (1 - args.adam_beta2) * gi * gi;
        const mHat = m / (1 - args.adam_beta1);
        const vHat = v / (1 - args.adam_beta2);
        return w * (1 - lr * wd) - (lr * mHat) / (Math.sqrt(vHat) + args.adam_epsilon);
      });
      expect(maxAbsDiff(after[name], expected)).toBeLessThan(2e-6);
      const m = moments.tensor(`exp_avg.${name}`).toFloat32Array();
      expect(maxAbsDiff(m, g[name].map((x) => (1 - args.adam_beta1) * x * clip))).toBeLessThan(1e-7);
    }
  });

  it('follows the cosine schedule with warmup (transformers: the first update uses lr 0)', async () => {
    const r = await new Trainer(tinyPeft(), {
      train_dataset: tokenDataset(SEQS), per_device_train_batch_size: 4, max_steps: 10, learning_rate: 1e-3,
      lr_scheduler_type: 'cosine', warmup_steps: 3,
    }).train();
    const expected = Array.from({ length: 10 }, (_, s) => (s < 3 ? s / 3 : 0.5 * (1 + Math.cos((Math.PI * (s - 3)) / 7))) * 1e-3);
    expect(maxAbsDiff(r.log_history.map((h) => h.lr), expected)).toBeLessThan(1e-15);
    // 12 sequences in batches of 4: 3 steps an epoch.
    expect(r.epoch).toBeCloseTo(10 / 3, 10);
  });

  it('trains for num_train_epochs, a short last step at the end of each epoch', async () => {
    const r = await new Trainer(tinyPeft(), { train_dataset: tokenDataset(SEQS), per_device_train_batch_size: 5, gradient_accumulation_steps: 2, num_train_epochs: 2 }).train();
    // 3 batches an epoch (5, 5, 2): a step of 2 batches and a step of 1 batch, twice.
    expect(r.global_step).toBe(4);
    expect(r.epoch).toBe(2);
    expect(r.log_history[0].tokens + r.log_history[1].tokens).toBe(SEQS.flat().length);
  });
});

describe('reproducibility and resuming', () => {
  const resumable = (optimizer: 'adamw' | 'sgd', out: string, extra: TrainingArguments = {}): TrainingArguments => ({
    train_dataset: tokenDataset(SEQS),
    eval_dataset: tokenDataset(EVAL_SEQS),
    optimizer,
    momentum: 0.9,
    learning_rate: optimizer === 'adamw' ? 0.02 : 0.2,
    weight_decay: 0.01,
    lr_scheduler_type: 'cosine',
    warmup_ratio: 0.2,
    per_device_train_batch_size: 3,
    gradient_accumulation_steps: 2,
    max_steps: 12,
    eval_steps: 3,
    save_steps: 4,
    output_dir: out,
    seed: 3,
    ...extra,
  });
  const DROPOUT = { ...LORA, lora_dropout: 0.3 };

  it.each(['adamw', 'sgd'] as const)('a run interrupted at step 6 and resumed gives the uninterrupted losses bit for bit (%s)', async (optimizer) => {
    const whole = tinyPeft(DROPOUT);
    const full = await new Trainer(whole, resumable(optimizer, outDir(`full-${optimizer}`))).train();
    expect(full.losses).toHaveLength(12);

    const out = outDir(`cut-${optimizer}`);
    const controller = new AbortController();
    const first = tinyPeft(DROPOUT);
    const cut = await new Trainer(first, {
      ...resumable(optimizer, out),
      signal: controller.signal,
      callbacks: { onStep: ({ step }) => (step === 6 ? controller.abort() : undefined) },
    }).train();
    expect(cut.reason).toBe('aborted');
    expect(cut.global_step).toBe(6);
    // Saved at step 4 (save_steps) and at new best evaluations; nothing after the abort.
    const steps = cut.checkpoints.map((c) => Number(path.basename(c).split('-')[1]));
    expect(steps).toContain(4);
    expect(Math.max(...steps)).toBeLessThanOrEqual(6);

    // A fresh process would build the model again: resume on a new model from checkpoint-4.
    const again = tinyPeft(DROPOUT);
    const resumed = await new Trainer(again, resumable(optimizer, out)).train({ resumeFrom: path.join(out, 'checkpoint-4') });
    expect(resumed.losses).toEqual(full.losses);
    expect(resumed.eval_history).toEqual(full.eval_history);
    expect(values(again)).toEqual(values(whole));
  });

  it('resumes P-tuning exactly (the prompt encoder\'s weights are in the checkpoint)', async () => {
    const full = await new Trainer(tinyPeft(P_TUNING), resumable('adamw', outDir('full-ptuning'))).train();
    const out = outDir('cut-ptuning');
    const controller = new AbortController();
    await new Trainer(tinyPeft(P_TUNING), { ...resumable('adamw', out), signal: controller.signal, callbacks: { onStep: ({ step }) => (step === 5 ? controller.abort() : undefined) } }).train();
    const resumed = await new Trainer(tinyPeft(P_TUNING), resumable('adamw', out)).train({ resumeFrom: path.join(out, 'checkpoint-4') });
    expect(resumed.losses).toEqual(full.losses);
  });

  it('resumeFrom: true continues from the latest checkpoint', async () => {
    const out = outDir('latest');
    const controller = new AbortController();
    await new Trainer(tinyPeft(DROPOUT), { ...resumable('adamw', out), save_steps: 2, signal: controller.signal, callbacks: { onSave: ({ step }) => (step === 8 ? controller.abort() : undefined) } }).train();
    const seen: number[] = [];
    const r = await new Trainer(tinyPeft(DROPOUT), { ...resumable('adamw', out), save_steps: 2, callbacks: { onStep: ({ step }) => void seen.push(step) } }).train({ resumeFrom: true });
    expect(seen).toEqual([9, 10, 11, 12]);
    expect(r.global_step).toBe(12);
    const records = readRunLog(path.join(out, 'run.jsonl'));
    expect(records.filter((e) => e.event === 'start')).toHaveLength(2);
    expect(records.filter((e) => e.event === 'step').map((e) => (e as { step: number }).step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('the same seed gives the same run; another seed another (data order and dropout)', async () => {
    const run = async (seed: number) =>
      (await new Trainer(tinyPeft(DROPOUT), { train_dataset: tokenDataset(SEQS), per_device_train_batch_size: 3, max_steps: 6, learning_rate: 0.02, seed }).train()).losses;
    const a = await run(5);
    expect(await run(5)).toEqual(a);
    expect(await run(6)).not.toEqual(a);
  });
});

describe('evaluation, early stopping and checkpoints', () => {
  it('stops after early_stopping_patience evaluations without improvement and restores the best weights', async () => {
    const out = outDir('early');
    const evals: number[] = [];
    const peft = tinyPeft();
    const trainer = new Trainer(peft, {
      train_dataset: tokenDataset(SEQS),
      eval_dataset: tokenDataset(EVAL_SEQS),
      per_device_train_batch_size: 4,
      learning_rate: 0.3, // large enough to overshoot: the eval loss falls, then rises
      lr_scheduler_type: 'constant',
      max_steps: 100,
      eval_steps: 2,
      early_stopping_patience: 2,
      output_dir: out,
      save_total_limit: 1,
      callbacks: { onEval: ({ eval_loss }) => void evals.push(eval_loss) },
    });
    const r = await trainer.train();
    expect(r.reason).toBe('early_stopping');
    // Two evaluations after the best one did not beat it (2.2770 at step 12, then 2.2952 and 2.2839).
    expect(r.eval_history.map((e) => e.step)).toEqual(Array.from({ length: evals.length }, (_, i) => 2 * (i + 1)));
    const best = Math.min(...evals);
    expect(evals.indexOf(best)).toBe(evals.length - 3);
    expect(r.best).toMatchObject({ step: r.global_step - 4, eval_loss: best });
    expect(Math.min(...evals.slice(0, -2))).toBe(best);
    // The best checkpoint survives save_total_limit; the weights now are the best ones.
    expect(r.checkpoints).toContain(r.best!.checkpoint);
    expect(readTrainerState(r.best!.checkpoint!).global_step).toBe(r.best!.step);
    expect((await trainer.evaluate()).eval_loss).toBe(best);
    expect(best).not.toBe(evals[evals.length - 1]);
    // The checkpoint's adapter loads on its own and gives the best loss too.
    const loaded = await loadAdapter(tinyLlama().model, r.best!.checkpoint!);
    expect((await new Trainer(loaded, { train_dataset: tokenDataset(SEQS), per_device_eval_batch_size: 4 }).evaluate(tokenDataset(EVAL_SEQS))).eval_loss).toBeCloseTo(best, 6);
  });

  it('evaluates without dropout: the loss of an adapter with lora_dropout 0.5 is that of the same weights without', async () => {
    const noisy = tinyPeft({ ...LORA, lora_dropout: 0.5, init_lora_weights: false });
    const clean = tinyPeft({ ...LORA, init_lora_weights: false });
    const evalData = tokenDataset(EVAL_SEQS);
    const a = await new Trainer(noisy, { train_dataset: evalData }).evaluate(evalData);
    const b = await new Trainer(clean, { train_dataset: evalData }).evaluate(evalData);
    expect(a.eval_loss).toBe(b.eval_loss);
    // And it is the token-weighted mean of −log softmax, written out here.
    let sum = 0;
    let count = 0;
    for (const ids of EVAL_SEQS) {
      const logits = (await clean.forward([ids])).toFloat32Array();
      for (let t = 1; t < ids.length; t++) {
        const row = logits.subarray((t - 1) * 11, t * 11);
        const max = Math.max(...row);
        sum += Math.log(row.reduce((acc, v) => acc + Math.exp(v - max), 0)) + max - row[ids[t]];
        count++;
      }
    }
    expect(a.tokens).toBe(count);
    expect(a.eval_loss).toBeCloseTo(sum / count, 6);
  });

  it('keeps the best weights in memory without output_dir', async () => {
    const peft = tinyPeft();
    const trainer = new Trainer(peft, {
      train_dataset: tokenDataset(SEQS), eval_dataset: tokenDataset(EVAL_SEQS), per_device_train_batch_size: 4, learning_rate: 0.05,
      max_steps: 8, eval_steps: 2, load_best_model_at_end: true,
    });
    const r = await trainer.train();
    expect((await trainer.evaluate()).eval_loss).toBe(r.best!.eval_loss);
  });

  it('puts the weights from before training back when a diverged run never beat them (eval_on_start)', async () => {
    // v_proj only: NaN queries (q_proj) come out of attention as finite values, NaN values do not.
    const peft = tinyPeft({ ...LORA, target_modules: ['v_proj'], init_lora_weights: false });
    // SGD with lr · weight_decay = 1e12 multiplies the weights by about −1e12 a step: infinite by step 4.
    // nan_policy 'skip' lets the diverged steps pass (without updates) instead of stopping the run.
    const trainer = new Trainer(peft, {
      train_dataset: tokenDataset(SEQS), eval_dataset: tokenDataset(EVAL_SEQS), per_device_train_batch_size: 4,
      optimizer: 'sgd', learning_rate: 1e6, weight_decay: 1e6, max_grad_norm: 0, max_steps: 4, eval_steps: 4, eval_on_start: true, load_best_model_at_end: true,
      nan_policy: 'skip', warn: () => undefined,
    });
    const r = await trainer.train();
    expect(r.eval_history.map((e) => e.step)).toEqual([0, 4]);
    expect(r.eval_history[1].eval_loss).toBeNaN();
    expect(r.best?.step).toBe(0);
    expect(Object.values(values(peft)).flat().every(Number.isFinite)).toBe(true);
    expect((await trainer.evaluate()).eval_loss).toBe(r.eval_history[0].eval_loss);
  });

  it('an interrupted save leaves no checkpoint folder behind, and the previous one resumes', async () => {
    const out = outDir('broken-save');
    const real = safetensorsIo.writeSafetensors;
    let calls = 0;
    const spy = jest.spyOn(safetensorsIo, 'writeSafetensors').mockImplementation(async (file, tensors, metadata) => {
      // The checkpoint of step 4 dies while writing its optimizer state.
      if (file.endsWith('optimizer.safetensors') && ++calls === 2) throw new Error('disk full');
      return real(file, tensors, metadata);
    });
    try {
      const args: TrainingArguments = { train_dataset: tokenDataset(SEQS), per_device_train_batch_size: 4, max_steps: 6, save_steps: 2, output_dir: out, learning_rate: 0.01 };
      await expect(new Trainer(tinyPeft(), args).train()).rejects.toThrow('disk full');
      expect(fs.readdirSync(out).sort()).toEqual(['checkpoint-2', 'report.html', 'run.jsonl']);
      spy.mockRestore();
      const r = await new Trainer(tinyPeft(), args).train({ resumeFrom: true });
      expect(r.global_step).toBe(6);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('bad input', () => {
  const data = () => tokenDataset(SEQS);
  const error = (code: string, message: string) => expect.objectContaining({ code, message: expect.stringContaining(message) });

  it.each([
    [{ learning_rate: '1e-4' }, 'E_CONFIG', 'Expected a finite number for learning_rate but received the string "1e-4"'],
    [{ optimizer: 'adam' }, 'E_CONFIG', 'Expected one of adamw, sgd for optimizer'],
    [{ lr_rate: 1 }, 'E_CONFIG', 'Unknown Trainer option "lr_rate"'],
    [{ gradient_accumulation_steps: 0 }, 'E_CONFIG', 'for gradient_accumulation_steps but received the number 0'],
    [{ save_steps: 10 }, 'E_CONFIG', 'save_steps needs output_dir'],
    [{ early_stopping_patience: 2 }, 'E_CONFIG', 'early_stopping_patience needs validation data'],
    [{ train_dataset: [[1, 2]] }, 'E_CONFIG', 'Expected a Dataset (loadDataset) for train_dataset'],
  ])('%j → %s', (extra, code, message) => {
    expect(() => new Trainer(tinyPeft(), { train_dataset: data(), ...(extra as TrainingArguments) })).toThrow(error(code, message));
  });

  it('needs exactly one source of training data, and a PeftModel', () => {
    expect(() => new Trainer(tinyPeft(), {})).toThrow(error('E_CONFIG', 'train_dataset (a Dataset) or train_file'));
    expect(() => new Trainer(tinyLlama().model as unknown as PeftModel, { train_dataset: data() })).toThrow(error('E_ARGUMENT', 'a PeftModel'));
  });

  it('gradient_checkpointing (activation checkpointing) leaves every loss unchanged', async () => {
    const switchedOn: boolean[] = [];
    const run = async (gradient_checkpointing: boolean) => {
      const peft = tinyPeft({ ...LORA, lora_dropout: 0.3 });
      const spy = jest.spyOn(peft.base, 'setGradientCheckpointing');
      const r = await new Trainer(peft, { train_dataset: data(), per_device_train_batch_size: 3, max_steps: 5, learning_rate: 0.05, gradient_checkpointing }).train();
      switchedOn.push(spy.mock.calls.some(([on]) => on !== false));
      return r.losses;
    };
    expect(await run(true)).toEqual(await run(false));
    expect(switchedOn).toEqual([true, false]);
  });

  it('refuses a checkpoint of another run, a folder that is not one, and a second concurrent train()', async () => {
    const out = outDir('other-run');
    await new Trainer(tinyPeft(), { train_dataset: data(), per_device_train_batch_size: 4, max_steps: 2, output_dir: out }).train();
    const ckpt = path.join(out, 'checkpoint-2');
    const wider = tinyPeft({ ...LORA, r: 4 });
    await expect(new Trainer(wider, { train_dataset: data(), per_device_train_batch_size: 4, max_steps: 4 }).train({ resumeFrom: ckpt })).rejects.toThrow(
      error('E_CONFIG', `The checkpoint ${ckpt} is from another run: model.layers.0.self_attn.q_proj.lora_A.default.weight has shape [2,8] there but [4,8] here`),
    );
    await expect(new Trainer(tinyPeft(), { train_dataset: data(), per_device_train_batch_size: 2, max_steps: 4 }).train({ resumeFrom: ckpt })).rejects.toThrow(
      error('E_CONFIG', 'it used per_device_train_batch_size 4 but this run uses 2'),
    );
    await expect(new Trainer(tinyPeft(), { train_dataset: data() }).train({ resumeFrom: tmp })).rejects.toThrow(error('E_IO', 'Expected a checkpoint folder with trainer_state.json'));
    // A fresh run does not mix into another run's folder.
    await expect(new Trainer(tinyPeft(), { train_dataset: data(), output_dir: out }).train()).rejects.toThrow(error('E_CONFIG', 'already holds checkpoints of a run (checkpoint-2)'));
    const t = new Trainer(tinyPeft(), { train_dataset: data(), max_steps: 2 });
    const running = t.train();
    await expect(t.train()).rejects.toThrow(error('E_BUSY', 'already training'));
    await running;
  });

  it('refuses classification data (it trains language models)', async () => {
    const d = tokenDataset(SEQS);
    const classification = new Dataset(d.examples.map((e) => ({ ...e, label: 0 })), { ...d.stats(), format: 'classification' }, 0);
    await expect(new Trainer(tinyPeft(), { train_dataset: classification }).train()).rejects.toThrow(error('E_UNSUPPORTED', 'classification data'));
  });

  it('has nothing to train on an adapter loaded for inference', async () => {
    const out = outDir('frozen');
    const peft = tinyPeft();
    await peft.saveAdapter(out);
    const frozen = await loadAdapter(tinyLlama().model, out);
    await expect(new Trainer(frozen, { train_dataset: data() }).train()).rejects.toThrow(error('E_CONFIG', 'no trainable parameters'));
  });
});

describe('stories260K', () => {
  // "The Hare and the Tortoise" (Aesop, public domain), one sentence per record.
  const FABLE = [
    'A hare was making fun of a tortoise one day for being so slow.',
    'Do you ever get anywhere? he asked with a mocking laugh.',
    'Yes, replied the tortoise, and I get there sooner than you think.',
    'I will run you a race and prove it.',
    'The hare was much amused at the idea of running a race with the tortoise.',
    'So the fox, who had agreed to act as judge, marked the distance and started the runners off.',
    'The hare was soon far out of sight, and he lay down beside the course to take a nap.',
    'The tortoise meanwhile kept going slowly but steadily.',
    'After a time, he passed the place where the hare was sleeping.',
    'The hare now ran his swiftest, but he could not overtake the tortoise in time.',
  ];
  const HELD_OUT = ['But the hare slept on very peacefully; and when at last he did wake up, the tortoise was near the goal.', 'Slow and steady wins the race.'];

  it('LoRA through the Trainer lowers the held-out loss, writes the log and report, and never blocks the event loop', async () => {
    const dir = outDir('stories');
    fs.mkdirSync(dir, { recursive: true });
    const jsonl = (lines: string[]) => lines.map((text) => JSON.stringify({ text })).join('\n') + '\n';
    fs.writeFileSync(path.join(dir, 'train.jsonl'), jsonl(FABLE));
    fs.writeFileSync(path.join(dir, 'valid.jsonl'), jsonl(HELD_OUT));
    const model = await loadModel(STORIES_HF_DIR);
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: 'all-linear' }, { seed: 1 });
    const trainer = new Trainer(peft, {
      train_file: path.join(dir, 'train.jsonl'),
      valid_file: path.join(dir, 'valid.jsonl'),
      output_dir: path.join(dir, 'out'),
      learning_rate: 2e-3,
      lr_scheduler_type: 'cosine',
      warmup_steps: 2,
      per_device_train_batch_size: 4,
      max_steps: 30,
      eval_steps: 10,
      save_steps: 15,
    });
    const before = (await trainer.evaluate()).eval_loss;
    // A timer that must keep firing while the native calls run on worker threads.
    let ticks = 0;
    let last = performance.now();
    let longestGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
      ticks++;
    }, 5);
    const started = performance.now();
    let r;
    try {
      r = await trainer.train();
    } finally {
      clearInterval(timer);
    }
    const seconds = (performance.now() - started) / 1000;
    expect(ticks).toBeGreaterThan(Math.min(20, (seconds * 1000) / 50));
    const after = r.eval_history[r.eval_history.length - 1].eval_loss;
    expect(after).toBeLessThan(before - 0.2);
    const records = readRunLog(r.run_log!);
    expect(records.filter((e) => e.event === 'step')).toHaveLength(30);
    expect(records.filter((e) => e.event === 'eval').map((e) => (e as { step: number }).step)).toEqual([10, 20, 30]);
    expect(fs.readFileSync(r.report!, 'utf8')).toContain('data-series="eval loss"');
    expect(r.checkpoints.map((c) => path.basename(c))).toEqual(expect.arrayContaining(['checkpoint-15', 'checkpoint-30']));
    console.log(`stories260K LoRA: held-out loss ${before.toFixed(4)} → ${after.toFixed(4)} in ${seconds.toFixed(2)} s; ${ticks} timer ticks, longest gap ${longestGap.toFixed(0)} ms`);
  });
});
