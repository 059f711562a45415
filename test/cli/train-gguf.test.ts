// Training on a quantized GGUF base from the command line and with the Trainer: stories260K written
// as a Q4_K_M GGUF (its 64- and 172-wide rows make that Q5_0, Q8_0 and F16, as llama-quantize
// would), loaded with its linear layers kept in those types, fine-tuned with LoRA by `peft-native
// train`; the adapter lowers the held-out loss on the quantized base, loads back onto it, and the
// merged model exports as a Q4_K_M GGUF again.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { exportGguf, getPeftModel, loadAdapter, loadModel, readGguf, readRunLog, Trainer, type RunRecord, type StepEvent } from '../../lib';
import { ensureBuilt } from '../helpers/built';
import { cliOk } from '../helpers/cli';
import { STORIES_GGUF } from '../helpers/models';
import { tokenDataset } from '../helpers/token-dataset';

// "The Hare and the Tortoise" (Aesop, public domain), retold.
const TRAIN = [
  'A hare was making fun of a tortoise one day for being so slow.',
  'Do you ever get anywhere? he asked with a mocking laugh.',
  'Yes, replied the tortoise, and I get there sooner than you think.',
  'I will run you a race and prove it.',
  'The hare was much amused at the idea of running a race with the tortoise.',
  'The tortoise meanwhile kept going slowly but steadily.',
];
const HELD_OUT = 'The hare was much amused, and the tortoise kept going slowly but steadily.';

let dir: string;
let base: string;
beforeAll(async () => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-train-gguf-'));
  base = path.join(dir, 'stories-Q4_K_M.gguf');
  const f32 = await loadModel(STORIES_GGUF);
  await exportGguf(f32, base, { type: 'Q4_K_M' });
  f32.dispose();
  fs.writeFileSync(path.join(dir, 'train.jsonl'), TRAIN.map((text) => JSON.stringify({ text })).join('\n') + '\n');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function heldOutLoss(model: { loss(ids: number[][]): Promise<{ loss: number }> }, tokenizer: { encode(t: string): number[] }): Promise<number> {
  return (await model.loss([tokenizer.encode(HELD_OUT)])).loss;
}

it('peft-native train fine-tunes a LoRA on the quantized base; it lowers the held-out loss there and exports as Q4_K_M', async () => {
  const model = await loadModel(base);
  const types = new Set([...model.ggmlWeights().values()].map((g) => g.type));
  expect([...types].sort()).toEqual(['Q5_0', 'Q8_0']); // F16 ffn_down rows are dense in the model
  const before = await heldOutLoss(model, model.tokenizer!);
  model.dispose();

  const out = path.join(dir, 'run');
  const stdout = cliOk([
    'train', '--model', base, '--train-file', path.join(dir, 'train.jsonl'), '--output-dir', out, '--max-steps', '40',
    '--learning-rate', '3e-3', '--batch-size', '2', '--set', 'peft.r=8', '--set', 'peft.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj]', '--no-progress',
  ]);
  expect(stdout).toMatch(/^Training finished \(completed\): 40 steps/m);
  const losses = readRunLog(path.join(out, 'run.jsonl')).filter((r: RunRecord) => r.event === 'step').map((r) => (r as StepEvent).loss);
  expect(losses[losses.length - 1]).toBeLessThan(losses[0]);

  const tuned = await loadAdapter(await loadModel(base), path.join(out, 'adapter'));
  expect(tuned.base.ggmlWeights().size).toBeGreaterThan(0); // still quantized under the adapter
  const after = await heldOutLoss(tuned, tuned.base.tokenizer!);
  expect(after).toBeLessThan(before - 0.05);

  const exported = path.join(dir, 'tuned-Q4_K_M.gguf');
  await exportGguf(tuned, exported, { type: 'Q4_K_M' });
  const g = readGguf(exported);
  expect(g.metadata['general.file_type']).toBe(15);
  g.dispose();
  const reloaded = await loadModel(exported);
  // The merged, requantized model keeps most of what the adapter learned.
  expect(await heldOutLoss(reloaded, reloaded.tokenizer!)).toBeLessThan(before - 0.03);
  reloaded.dispose();
  tuned.dispose();
}, 180_000);

it('the Trainer trains a DoRA adapter on the quantized base', async () => {
  const model = await loadModel(base);
  const peft = getPeftModel(model, { peft_type: 'LORA', r: 4, lora_alpha: 8, use_dora: true, target_modules: ['q_proj', 'v_proj', 'down_proj'] }, { seed: 1 });
  const tok = model.tokenizer!;
  const before = await heldOutLoss(peft, tok);
  const data = tokenDataset(TRAIN.map((t) => tok.encode(t)));
  const r = await new Trainer(peft, { train_dataset: data, per_device_train_batch_size: 2, max_steps: 30, learning_rate: 3e-3, logging_steps: 10 }).train();
  expect(r.global_step).toBe(30);
  expect(await heldOutLoss(peft, tok)).toBeLessThan(before - 0.05);
  peft.dispose();
}, 120_000);
