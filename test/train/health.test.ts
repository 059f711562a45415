// Numerical health of training runs: clipping statistics against norms computed here from the
// gradients; NaN / Inf weights refused before training; a real divergence stopping with E_NONFINITE at
// the right step and parameter, the weights and last checkpoint untouched; nan_policy 'skip' leaving a
// poisoned step's update out (weights and optimizer state bit for bit) and stopping after too many in a
// row; loss spikes flagged by the rule written out here; corrupted samples refused naming their record.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadDataset, loadModel, readRunLog, readSafetensors, tensor, Trainer, type PeftModel, type RunRecord, type TrainingArguments } from '../../lib';
import { Dataset } from '../../lib/data/dataset';
import { microBatch } from '../../lib/train/accumulate';
import { readTrainerState } from '../../lib/train/checkpoint';
import { STORIES_HF_DIR } from '../helpers/models';
import { tinyLlama } from '../helpers/tiny-llama';
import { SEQS, tokenDataset } from '../helpers/token-dataset';

const LORA = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false } as const;
const quiet = () => undefined;

function tinyPeft(config: Record<string, unknown> = LORA, seed = 1): PeftModel {
  return getPeftModel(tinyLlama().model, config, { seed });
}

function values(peft: PeftModel): Record<string, number[]> {
  return Object.fromEntries(Object.entries(peft.trainableParameters()).map(([n, t]) => [n, [...t.toFloat32Array()]]));
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-health-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const outDir = (name: string) => path.join(tmp, name);

/** A progress stream that keeps what was written (a file, not a terminal: plain lines). */
function sink() {
  const chunks: string[] = [];
  return { write: (c: string) => (chunks.push(c), true), isTTY: false, text: () => chunks.join('') };
}

const events = <E extends RunRecord['event']>(records: RunRecord[], kind: E) => records.filter((r) => r.event === kind) as Extract<RunRecord, { event: E }>[];

/** The whole data set as one batch in file order, ready for loss(). */
const wholeBatch = (data: Dataset) => microBatch(data.batches(data.length, { shuffle: false }).next().value!);

/** The global L2 norm of gradients, in float64. */
function l2(grads: Record<string, { toFloat32Array(): Float32Array }>): number {
  let sum = 0;
  for (const g of Object.values(grads)) for (const v of g.toFloat32Array()) sum += v * v;
  return Math.sqrt(sum);
}

/** Loads a checkpoint's trainable values into a fresh model of the same configuration. */
function fromCheckpoint(dir: string | undefined, config: Record<string, unknown> = LORA): PeftModel {
  const peft = tinyPeft(config);
  if (dir === undefined) return peft;
  const file = readSafetensors(path.join(dir, 'trainable_parameters.safetensors'));
  for (const [name, t] of Object.entries(peft.trainableParameters())) peft.setParameterValue(name, tensor(file.tensor(name).toFloat32Array(), t.shape));
  return peft;
}

describe('gradient clipping statistics', () => {
  it('pre-clip norm, clip coefficient and clipped flag equal those computed here from each step\'s gradient; the log, report and progress show them', async () => {
    const data = tokenDataset(SEQS);
    const maxNorm = 0.09;
    const out = outDir('clip');
    const progress = sink();
    const r = await new Trainer(tinyPeft(), {
      train_dataset: data, per_device_train_batch_size: SEQS.length, learning_rate: 0.05, lr_scheduler_type: 'constant',
      max_grad_norm: maxNorm, max_steps: 8, save_steps: 1, output_dir: out, progress,
    }).train();

    // Each step's batch is the whole set (in a shuffled row order, which changes only rounding): its
    // gradient at the weights of the checkpoint before it, and torch's coefficient max / (norm + 1e-6).
    const batch = wholeBatch(data);
    const expected: Array<{ norm: number; coef: number }> = [];
    for (let step = 1; step <= 8; step++) {
      const probe = fromCheckpoint(step === 1 ? undefined : path.join(out, `checkpoint-${step - 1}`));
      const { grads } = await probe.loss(batch.ids, batch.labels, { attentionMask: batch.attentionMask });
      const norm = l2(grads);
      expected.push({ norm, coef: Math.min(1, maxNorm / (norm + 1e-6)) });
      expect(Math.abs(norm - maxNorm) / maxNorm).toBeGreaterThan(1e-3); // no step sits on the threshold
    }
    const clipped = expected.map((e) => e.coef < 1);
    expect(clipped).toContain(true);
    expect(clipped).toContain(false);
    r.log_history.forEach((h, i) => {
      expect(Math.abs(h.grad_norm - expected[i].norm) / expected[i].norm).toBeLessThan(1e-4);
      expect(Math.abs(h.clip_coef! - expected[i].coef)).toBeLessThan(1e-4);
      expect(h.clip_coef! < 1).toBe(clipped[i]);
    });
    const count = clipped.filter(Boolean).length;
    const largest = expected.reduce((best, e, i) => (e.norm > expected[best].norm ? i : best), 0);
    expect(r.health).toMatchObject({ clipped_steps: count, trained_steps: 8, skipped_steps: [], loss_spikes: [] });
    expect(r.health.largest_grad_norm!.step).toBe(largest + 1);
    expect(r.health.largest_grad_norm!.grad_norm).toBeCloseTo(expected[largest].norm, 6);

    const records = readRunLog(r.run_log!);
    const steps = events(records, 'step');
    expect(steps.map((s) => s.clipped_steps)).toEqual(clipped.map(Number));
    steps.forEach((s, i) => {
      expect(s.clip_coef).toBeCloseTo(expected[i].coef, 4);
      expect(s.grad_norm_max).toBe(s.grad_norm);
    });
    expect(events(records, 'end')[0].metrics).toMatchObject({ clipped_steps: count, trained_steps: 8, skipped_steps: 0, largest_grad_norm_step: largest + 1 });
    const html = fs.readFileSync(r.report!, 'utf8');
    expect(html).toContain(`${count} of 8 (${((100 * count) / 8).toFixed(1)}%) at max_grad_norm 0.09`);
    expect(html).toContain('data-series="gradient norm"');
    expect(html).toContain('data-series="max_grad_norm"');
    // The first progress line: the norm and whether it was clipped.
    const first = /^step 1\/8 .* grad ([\d.]+)( \(clipped\))? /m.exec(progress.text())!;
    expect(Number(first[1])).toBeCloseTo(expected[0].norm, 4);
    expect(first[2] !== undefined).toBe(clipped[0]);
  });

  it('logs every window of logging_steps: clipped steps and the largest norm of the window', async () => {
    const r = await new Trainer(tinyPeft(), {
      train_dataset: tokenDataset(SEQS), per_device_train_batch_size: 4, learning_rate: 0.05, max_grad_norm: 0.09, max_steps: 6, logging_steps: 3, output_dir: outDir('window'),
    }).train();
    const steps = events(readRunLog(r.run_log!), 'step');
    expect(steps.map((s) => s.step)).toEqual([3, 6]);
    for (const [w, s] of steps.entries()) {
      const own = r.log_history.slice(3 * w, 3 * w + 3);
      expect(s.clipped_steps).toBe(own.filter((h) => h.clip_coef! < 1).length);
      expect(s.grad_norm_max).toBe(Math.max(...own.map((h) => h.grad_norm)));
      expect(s.loss).toBeCloseTo(own.reduce((a, h) => a + h.loss, 0) / 3, 12);
    }
  });
});

describe('NaN and infinity in the weights before training', () => {
  it('a NaN in a trainable weight (setParameterValue) is refused before any step, naming the tensor and position', async () => {
    const peft = tinyPeft();
    const name = 'model.layers.1.self_attn.v_proj.lora_B.default.weight';
    const t = peft.trainableParameters()[name];
    const poisoned = t.toFloat32Array();
    poisoned[1 * t.shape[1] + 1] = NaN;
    peft.setParameterValue(name, tensor(poisoned, t.shape));
    let steps = 0;
    const args: TrainingArguments = { train_dataset: tokenDataset(SEQS), max_steps: 3, warn: quiet, callbacks: { onStep: () => void steps++ } };
    await expect(new Trainer(peft, args).train()).rejects.toMatchObject({
      code: 'E_NONFINITE',
      message: expect.stringContaining(`Trainer.train(): ${name} holds 1 NaN or infinite value of ${t.size} (the first, NaN, at [1, 1])`),
    });
    expect(steps).toBe(0);
    // Without the check, the first step's loss is NaN: the step check stops it, naming step 1.
    await expect(new Trainer(peft, { ...args, check_finite_weights: false }).train()).rejects.toMatchObject({ code: 'E_NONFINITE', message: expect.stringMatching(/^Step 1: the loss is NaN/) });
    expect(steps).toBe(0);
  });

  it('an infinity in a frozen base weight (replaceParameter) is refused too', async () => {
    const peft = tinyPeft();
    const name = 'model.layers.0.mlp.down_proj.weight';
    const w = peft.base.parameter(name).toFloat32Array();
    w[3] = -Infinity;
    peft.base.replaceParameter(name, tensor(w, [8, 12]));
    await expect(new Trainer(peft, { train_dataset: tokenDataset(SEQS), max_steps: 1 }).train()).rejects.toMatchObject({
      code: 'E_NONFINITE',
      message: expect.stringContaining(`${name} holds 1 NaN or infinite value of 96 (the first, -Infinity, at [0, 3])`),
    });
  });
});

describe('a diverging run', () => {
  // SGD with lr · weight_decay = 1e12 multiplies the v_proj LoRA weights by about −1e12 a step.
  const V_ONLY = { ...LORA, target_modules: ['v_proj'] };
  const diverging = (out: string, extra: TrainingArguments = {}): TrainingArguments => ({
    train_dataset: tokenDataset(SEQS), per_device_train_batch_size: SEQS.length, optimizer: 'sgd', learning_rate: 1e6, weight_decay: 1e6,
    max_grad_norm: 0, max_steps: 10, save_steps: 1, output_dir: out, warn: quiet, ...extra,
  });

  it('stops with E_NONFINITE at the first non-finite step, naming it and the first parameter with a non-finite gradient; nothing of that step is applied', async () => {
    const out = outDir('diverge');
    const peft = tinyPeft(V_ONLY);
    const seen: Array<{ step: number; loss: number; grad_norm: number }> = [];
    const err = await new Trainer(peft, { ...diverging(out), callbacks: { onStep: (i) => void seen.push(i) } }).train().catch((e) => e);
    expect(err).toMatchObject({ code: 'E_NONFINITE' });
    const step = Number(/^Step (\d+):/.exec(err.message)![1]);
    // Every step before it was finite, and it is the next one.
    expect(seen.map((s) => s.step)).toEqual(Array.from({ length: step - 1 }, (_, i) => i + 1));
    expect(seen.every((s) => Number.isFinite(s.loss) && Number.isFinite(s.grad_norm))).toBe(true);
    // The weights are still those of the last checkpoint (step - 1), which is complete and loads.
    const last = path.join(out, `checkpoint-${step - 1}`);
    expect(readTrainerState(last).global_step).toBe(step - 1);
    expect(values(peft)).toEqual(values(fromCheckpoint(last, V_ONLY)));
    expect(fs.existsSync(path.join(out, `checkpoint-${step}`))).toBe(false);
    // Computed here: the loss and gradient at those weights are not finite, and the first parameter
    // (in the model's order) with a non-finite gradient is the one named.
    const batch = wholeBatch(tokenDataset(SEQS));
    const { loss, grads } = await peft.loss(batch.ids, batch.labels, { attentionMask: batch.attentionMask });
    expect(Number.isFinite(loss) && Number.isFinite(l2(grads))).toBe(false);
    const firstBad = Object.keys(peft.trainableParameters()).find((n) => !grads[n].toFloat32Array().every(Number.isFinite))!;
    expect(err.message).toContain(`the first parameter with a non-finite gradient is ${firstBad}`);
    expect(err.message).toContain(`the weights are those after step ${step - 1} and the last checkpoint (step ${step - 1}) is intact`);
    // The log and the report say so.
    const records = readRunLog(path.join(out, 'run.jsonl'));
    const warning = events(records, 'warning');
    expect(warning).toEqual([expect.objectContaining({ step, kind: 'non_finite', parameter: firstBad, message: err.message })]);
    expect(events(records, 'end')[0]).toMatchObject({ reason: 'error', step: step - 1 });
    expect(fs.readFileSync(path.join(out, 'report.html'), 'utf8')).toContain(`Step ${step}: the loss is`);
  });

  it('a NaN learning rate is refused before training', () => {
    expect(() => new Trainer(tinyPeft(), { train_dataset: tokenDataset(SEQS), learning_rate: NaN })).toThrow(expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('learning_rate') }));
  });

  it('nan_policy skip: the diverged steps are skipped, and max_consecutive_nan_steps skips in a row stop the run', async () => {
    const out = outDir('diverge-skip');
    const err = await new Trainer(tinyPeft(V_ONLY), diverging(out, { nan_policy: 'skip', max_consecutive_nan_steps: 2 })).train().catch((e) => e);
    expect(err).toMatchObject({ code: 'E_NONFINITE', message: expect.stringContaining('The 2 steps before it were skipped already (max_consecutive_nan_steps 2)') });
    const stop = Number(/^Step (\d+):/.exec(err.message)![1]);
    const records = readRunLog(path.join(out, 'run.jsonl'));
    const steps = events(records, 'step');
    expect(steps.filter((s) => s.skipped_steps === 1).map((s) => s.step)).toEqual([stop - 2, stop - 1]);
    expect(events(records, 'warning').map((w) => w.step)).toEqual([stop - 2, stop - 1, stop]);
    expect(events(records, 'end')[0].metrics).toMatchObject({ skipped_steps: 2 });
    // The skipped steps' checkpoints hold the weights of the last step that trained.
    const trained = readSafetensors(path.join(out, `checkpoint-${stop - 3}`, 'trainable_parameters.safetensors'));
    const skipped = readSafetensors(path.join(out, `checkpoint-${stop - 1}`, 'trainable_parameters.safetensors'));
    for (const k of trained.keys()) expect(skipped.tensor(k).toFloat32Array()).toEqual(trained.tensor(k).toFloat32Array());
  });
});

describe('nan_policy skip', () => {
  it('a step made NaN by a poisoned base weight is skipped: weights and optimizer state bit for bit unchanged, the step counted, training goes on', async () => {
    const out = outDir('skip');
    const peft = tinyPeft();
    const norm = 'model.norm.weight';
    const original = peft.base.parameter(norm);
    const seen: Array<{ step: number; skipped?: boolean }> = [];
    const r = await new Trainer(peft, {
      train_dataset: tokenDataset(SEQS), per_device_train_batch_size: 4, learning_rate: 0.05, max_steps: 6, save_steps: 1, output_dir: out,
      nan_policy: 'skip', warn: quiet,
      callbacks: {
        onStep: (info) => {
          seen.push(info);
          // NaN in the final norm for step 4 only: every logit, the loss and every gradient are NaN.
          if (info.step === 3) peft.base.replaceParameter(norm, tensor(new Float32Array(8).fill(NaN), [8]));
          if (info.step === 4) peft.base.replaceParameter(norm, original);
        },
      },
    }).train();
    expect(r.global_step).toBe(6);
    expect(r.health.skipped_steps).toEqual([4]);
    expect(seen.map((s) => Boolean(s.skipped))).toEqual([false, false, false, true, false, false]);
    expect(r.log_history[3]).toMatchObject({ step: 4, skipped: true });
    expect(r.losses[3]).toBeNaN();
    expect(Number.isFinite(r.train_loss)).toBe(true);
    expect(r.train_loss).toBeCloseTo([0, 1, 2, 4, 5].reduce((a, i) => a + r.losses[i], 0) / 5, 12);
    // Checkpoints 3 and 4: the same weights and optimizer moments, bit for bit, and the same count of updates.
    for (const file of ['trainable_parameters.safetensors', 'optimizer.safetensors']) {
      const a = readSafetensors(path.join(out, 'checkpoint-3', file));
      const b = readSafetensors(path.join(out, 'checkpoint-4', file));
      expect(b.keys()).toEqual(a.keys());
      for (const k of a.keys()) expect(b.tensor(k).toFloat32Array()).toEqual(a.tensor(k).toFloat32Array());
    }
    expect(readTrainerState(path.join(out, 'checkpoint-4'))).toMatchObject({ global_step: 4, optimizer_steps: 3 });
    expect(readTrainerState(path.join(out, 'checkpoint-5')).optimizer_steps).toBe(4);
    // The skipped step still took its place in the schedule (linear decay over 6 steps).
    r.log_history.forEach((h, s) => expect(h.lr).toBeCloseTo(0.05 * (1 - s / 6), 15));
    // The log: a warning and a skipped step; the report counts it.
    const records = readRunLog(r.run_log!);
    expect(events(records, 'warning')).toEqual([expect.objectContaining({ step: 4, kind: 'non_finite', message: expect.stringContaining('Skipped: no update, the optimizer state is untouched') })]);
    expect(events(records, 'step')[3]).toMatchObject({ step: 4, skipped_steps: 1 });
    expect(fs.readFileSync(r.report!, 'utf8')).toContain('<tr><th>skipped steps (NaN / infinity)</th><td>1</td></tr>');
    // A run resumed from the skipped step's checkpoint continues as the uninterrupted one did.
    peft.base.replaceParameter(norm, original);
    const again = tinyPeft();
    const resumed = await new Trainer(again, {
      train_dataset: tokenDataset(SEQS), per_device_train_batch_size: 4, learning_rate: 0.05, max_steps: 6, save_steps: 1, output_dir: out, nan_policy: 'skip',
    }).train({ resumeFrom: path.join(out, 'checkpoint-4') });
    expect(resumed.losses.slice(4)).toEqual(r.losses.slice(4));
    expect(resumed.health.skipped_steps).toEqual([4]);
    expect(values(again)).toEqual(values(peft));
  });
});

describe('loss spikes', () => {
  // 29 copies of one sequence and one different sequence, a batch of one: the odd one's loss stands out.
  const A = [1, 2, 3, 4, 5, 6, 7, 8];
  const B = [10, 3, 9, 0, 8, 2, 7, 5];
  const seqs = [...Array.from({ length: 29 }, () => A), B];
  const args = (extra: TrainingArguments = {}): TrainingArguments => ({
    train_dataset: tokenDataset(seqs), per_device_train_batch_size: 1, learning_rate: 0.05, lr_scheduler_type: 'constant', max_steps: 60, warn: quiet, ...extra,
  });

  /** The rule, written out: above mean + 4 · max(std, 5% of the mean) of the last 50 unflagged losses, once 10 are in. */
  function expectedSpikes(losses: number[], window = 50, k = 4): number[] {
    const kept: number[] = [];
    const flagged: number[] = [];
    losses.forEach((loss, i) => {
      const w = kept.slice(-window);
      if (w.length >= Math.min(10, window)) {
        const mean = w.reduce((a, b) => a + b, 0) / w.length;
        const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
        if (loss > mean + k * Math.max(std, 0.05 * Math.abs(mean))) {
          flagged.push(i + 1);
          return;
        }
      }
      kept.push(loss);
    });
    return flagged;
  }

  it('flags the steps the rule flags (the odd sequence), warns, logs and reports them; the run trains on', async () => {
    const out = outDir('spike');
    const progress = sink();
    const warnings: string[] = [];
    const r = await new Trainer(tinyPeft(), { ...args({ output_dir: out, progress, warn: (m) => void warnings.push(m) }) }).train();
    const spikes = expectedSpikes(r.losses);
    // Where the odd sequence came in the seeded order: at step 27 (while the loss still falls fast, so
    // the spread of the window hides it) and at step 60 (flagged); no other step is.
    const order = tokenDataset(seqs).iterate(1, { seed: 42 });
    const oddSteps = Array.from({ length: 60 }, (_, i) => [i + 1, order.next().value!.indices[0]]).flatMap(([step, index]) => (index === 29 ? [step] : []));
    expect(oddSteps).toEqual([27, 60]);
    expect(spikes).toEqual([60]);
    expect(r.health.loss_spikes).toEqual(spikes);
    expect(r.global_step).toBe(60);
    expect(warnings.filter((m) => m.startsWith('Loss spike at step'))).toHaveLength(spikes.length);
    const records = readRunLog(r.run_log!);
    expect(events(records, 'warning').map((w) => [w.step, w.kind])).toEqual(spikes.map((s) => [s, 'loss_spike']));
    expect(events(records, 'end')[0].metrics).toMatchObject({ loss_spikes: spikes.length });
    expect(fs.readFileSync(r.report!, 'utf8')).toContain(`<tr><th>loss spikes</th><td>${spikes.length} (step ${spikes.join(', ')})</td></tr>`);
    expect(progress.text()).toContain(`warning: Loss spike at step ${spikes[0]}: loss `);
  });

  it("loss_spike_policy 'stop' ends the run before the spiking step's update; 'ignore' flags nothing", async () => {
    const full = await new Trainer(tinyPeft(), args()).train();
    const first = full.health.loss_spikes[0];
    const out = outDir('spike-stop');
    const r = await new Trainer(tinyPeft(), args({ loss_spike_policy: 'stop', output_dir: out, save_steps: 10 })).train();
    expect(r.reason).toBe('loss_spike');
    expect(r.global_step).toBe(first - 1);
    expect(r.losses).toEqual(full.losses.slice(0, first - 1));
    // No checkpoint after the spike: the last one is the one save_steps wrote.
    expect(r.checkpoints.map((c) => path.basename(c))).toEqual(Array.from({ length: Math.floor((first - 1) / 10) }, (_, i) => `checkpoint-${10 * (i + 1)}`));
    expect(events(readRunLog(r.run_log!), 'end')[0]).toMatchObject({ reason: 'loss_spike', step: first - 1 });
    const ignored = await new Trainer(tinyPeft(), args({ loss_spike_policy: 'ignore' })).train();
    expect(ignored.health.loss_spikes).toEqual([]);
    expect(ignored.losses).toEqual(full.losses);
  });
});

describe('corrupted data', () => {
  const error = (code: string, message: string) => expect.objectContaining({ code, message: expect.stringContaining(message) });

  it('a sample with a NaN or out-of-vocabulary id, or a bad label, is refused before training, naming its record', async () => {
    const bad = (edit: (seqs: number[][], labels: number[][]) => void) => {
      const d = tokenDataset(SEQS);
      const seqs = d.examples.map((e) => [...e.inputIds]);
      const labels = d.examples.map((e) => [...e.labels]);
      edit(seqs, labels);
      return new Dataset(d.examples.map((e, i) => ({ ...e, inputIds: seqs[i], labels: labels[i] })), d.stats(), 0);
    };
    let steps = 0;
    const run = (data: Dataset, role: 'train' | 'eval' = 'train') =>
      new Trainer(tinyPeft(), { train_dataset: role === 'train' ? data : tokenDataset(SEQS), ...(role === 'eval' ? { eval_dataset: data } : {}), max_steps: 2, callbacks: { onStep: () => void steps++ } }).train();
    await expect(run(bad((s) => (s[4][2] = NaN)))).rejects.toThrow(error('E_NONFINITE', 'in the training data but sequence 4 (from <test> line 5) has the number NaN at position 2'));
    await expect(run(bad((s) => (s[7][1] = 11)))).rejects.toThrow(error('E_RANGE', "Expected token ids in [0, 11) (the model's vocabulary) in the training data but sequence 7 (from <test> line 8) has the number 11 at position 1"));
    await expect(run(bad((_, l) => (l[2][2] = Infinity)))).rejects.toThrow(error('E_NONFINITE', 'labels in [0, 11) (the model\'s vocabulary, or -100) in the training data but sequence 2 (from <test> line 3) has the number Infinity'));
    await expect(run(bad((s) => (s[0][0] = 2.5)), 'eval')).rejects.toThrow(error('E_RANGE', 'in the validation data but sequence 0 (from <test> line 1) has the number 2.5 at position 0'));
    expect(steps).toBe(0);
  });

  it('a data file tokenized for another vocabulary is refused naming the file and line; a broken line is E_FORMAT naming it', async () => {
    const dir = outDir('data');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'train.jsonl');
    fs.writeFileSync(file, ['{"text": ""}', '{"text": "Once upon a time"}'].join('\n') + '\n');
    // stories260K's tokenizer has 512 tokens; the tiny model knows 11.
    const tokenizer = (await loadModel(STORIES_HF_DIR)).tokenizer!;
    const data = await loadDataset(file, tokenizer, { keepEmpty: true });
    await expect(new Trainer(tinyPeft(), { train_dataset: data, max_steps: 1 }).train()).rejects.toThrow(error('E_RANGE', `in the training data but sequence 1 (from ${file} line 2) has the number`));
    fs.writeFileSync(file, '{"text": "fine"}\n{"text": "cut off\n');
    await expect(loadDataset(file, tokenizer)).rejects.toThrow(error('E_FORMAT', `${file} line 2`));
  });

  it('token ids passed to the model name the row and position of a NaN or a fraction', async () => {
    const { model } = tinyLlama();
    await expect(model.loss([[1, 2, 3], [4, NaN, 6]])).rejects.toThrow(error('E_NONFINITE', 'Expected an integer token id for ids[1][1] but received the number NaN'));
    await expect(model.forward([1, 2.5, 3])).rejects.toThrow(error('E_RANGE', 'Expected an integer token id for ids[1] but received the number 2.5'));
    await expect(model.loss([[1, 2, 3]], [[1, 2, Infinity]])).rejects.toThrow(error('E_NONFINITE', 'for labels[0][2]'));
    await expect(model.forward([[1, 2, 11]])).rejects.toThrow(expect.objectContaining({ code: 'E_RANGE' })); // outside the vocabulary
  });
});
