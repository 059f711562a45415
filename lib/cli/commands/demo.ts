/**
 * `peft-native demo` (also `npm run demo`): a small real fine-tune, end to end. Loads stories260K
 * (a 260K-parameter Llama trained on TinyStories), measures its perplexity on a held-out sentence of
 * a fable it never saw, trains on the rest with the native fused AdamW, and measures again; writes
 * the run log and report.html. It trains every parameter for now; it moves to LoRA once the PEFT
 * API lands.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../../errors';
import type { Model } from '../../models/model';
import type { Tensor } from '../../tensor';
import { printSummary, TrainingProgress } from '../../train/progress';
import { writeReport } from '../../train/report';
import { readRunLog, RunLog } from '../../train/run-log';
import { summarizeRun } from '../../train/run-summary';
import { LrSchedule } from '../../train/schedule';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';

// "The Hare and the Tortoise" (Aesop, public domain), retold in plain sentences.
const FABLE = `A hare was making fun of a tortoise one day for being so slow. "Do you ever get anywhere?" he asked with a mocking laugh.
"Yes," replied the tortoise, "and I get there sooner than you think. I will run you a race and prove it."
The hare was much amused at the idea of running a race with the tortoise, but for the fun of the thing he agreed.
So the fox, who had agreed to act as judge, marked the distance and started the runners off.
The hare was soon far out of sight, and to make the tortoise feel very deeply how silly it was for him to try a race with a hare, he lay down beside the course to take a nap until the tortoise should catch up.
The tortoise meanwhile kept going slowly but steadily, and, after a time, passed the place where the hare was sleeping.
But the hare slept on very peacefully; and when at last he did wake up, the tortoise was near the goal.
The hare now ran his swiftest, but he could not overtake the tortoise in time.
The race is not always to the swift. Slow and steady wins the race.`;

/** stories260K as ggml-org publishes it, and its sha256 (../shared/models/README.md). */
const HUB_MODEL = 'hf:ggml-org/models/tinyllamas/stories260K.gguf';
const HUB_MODEL_SHA256 = '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d';

export const DEMO_SCHEMA = {
  model: { type: 'string', description: 'stories260K as a directory or .gguf (default: ../shared/models beside the package, else a download)', short: 'm', placeholder: 'path' },
  output_dir: { type: 'string', description: 'where run.jsonl and report.html go', default: 'peft-demo', short: 'o', placeholder: 'dir' },
  steps: { type: 'integer', description: 'optimizer steps', default: 40, min: 1 },
  learning_rate: { type: 'number', description: 'AdamW learning rate', default: 3e-4, min: 0, exclusiveMin: true },
  eval_steps: { type: 'integer', description: 'measure the held-out loss every this many steps', default: 10, min: 1 },
  progress: { type: 'boolean', description: 'show progress while training', default: true, offDescription: 'no progress display' },
} as const;

/** The resolved configuration of `peft-native demo`. */
export type DemoConfig = ConfigOf<typeof DEMO_SCHEMA>;

/** The package root, from lib/cli/commands or dist/cli/commands. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

async function demoModel(location: string | undefined): Promise<{ model: Model; where: string }> {
  const { loadModel } = await import('../../models/model');
  if (location !== undefined) return { model: await loadModel(location), where: location };
  const local = path.join(PACKAGE_ROOT, '..', 'shared', 'models', 'stories260K-hf');
  if (fs.existsSync(path.join(local, 'config.json'))) return { model: await loadModel(local), where: local };
  // Elsewhere: download once into the cache, and check the bytes against the pinned hash.
  const { resolveModel } = await import('../../models/hub');
  const file = await resolveModel(HUB_MODEL);
  const sha = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  if (sha !== HUB_MODEL_SHA256) throw new PeftError(`${file} has sha256 ${sha}, not stories260K's ${HUB_MODEL_SHA256}; delete it and run again`, 'E_IO');
  return { model: await loadModel(file), where: file };
}

/** Runs the demo. */
export async function runDemo(config: DemoConfig): Promise<void> {
  const out = process.stdout;
  // Loaded here, not at the top: --help should not need the native addon.
  const { adamwAsync, clipGradNormAsync } = await import('../../ops/optim');
  const { zeros } = await import('../../tensor');
  const { model, where } = await demoModel(config.model);
  const tok = model.tokenizer;
  if (!tok) throw new PeftError(`${where} has no tokenizer`, 'E_CONFIG');
  const lines = FABLE.split('\n');
  const heldOut = lines.splice(5, 1)[0]; // one sentence of the story is never trained on
  const trainIds = tok.encode(lines.join('\n'));
  const heldIds = tok.encode(heldOut);
  const seq = 48;
  const windows: number[][] = [];
  for (let i = 0; i + seq <= trainIds.length; i += seq / 2) windows.push(trainIds.slice(i, i + seq));

  const heldOutLoss = async () => {
    const { loss, grads } = await model.loss([heldIds]);
    for (const g of Object.values(grads)) g.dispose();
    return loss;
  };
  const sample = async () => (await model.generate('The tortoise', { maxNewTokens: 24 })).text;
  const names = model.parameterNames();
  out.write(`model: ${where} (${names.length} tensors)\n`);
  out.write(`training text: ${trainIds.length} tokens in ${windows.length} windows of ${seq}; held-out: ${heldIds.length} tokens\n`);
  const before = await heldOutLoss();
  out.write(`before: held-out perplexity ${Math.exp(before).toFixed(2)}\n`);
  out.write(`before: ${JSON.stringify(await sample())}\n`);

  fs.mkdirSync(config.output_dir, { recursive: true });
  const logPath = path.join(config.output_dir, 'run.jsonl');
  const reportPath = path.join(config.output_dir, 'report.html');
  fs.rmSync(logPath, { force: true }); // each demo is a fresh run
  const log = RunLog.open(logPath);
  const schedule = new LrSchedule({ lr_scheduler_type: 'constant', learning_rate: config.learning_rate });
  log.write({ event: 'start', config: { ...config, model: where, method: 'full fine-tune (AdamW)', seq_length: seq, batch_size: 2 }, total_steps: config.steps });
  log.write({ event: 'eval', step: 0, eval_loss: before, perplexity: Math.exp(before) });

  const params = names.map((n) => model.parameter(n));
  const state = { expAvg: params.map((p) => zeros(p.shape)), expAvgSq: params.map((p) => zeros(p.shape)) };
  const progress = config.progress ? new TrainingProgress({ total: config.steps, intervalS: 1 }) : undefined;
  progress?.start();
  let after = before;
  try {
    for (let step = 1; step <= config.steps; step++) {
      const started = performance.now();
      const batch = [windows[(2 * step) % windows.length], windows[(2 * step + 1) % windows.length]];
      const { loss, grads } = await model.loss(batch);
      const gradList: Tensor[] = names.map((n) => grads[n]);
      const norm = await clipGradNormAsync(gradList, 1.0);
      const lr = schedule.lr;
      await adamwAsync(params, gradList, state, { lr, weightDecay: 0, step });
      schedule.step();
      gradList.forEach((g) => g.dispose());
      const tokensPerS = (batch.length * seq) / ((performance.now() - started) / 1000);
      const memory = process.memoryUsage.rss();
      log.write({ event: 'step', step, loss, lr, grad_norm: norm, tokens_per_s: tokensPerS, memory });
      progress?.update({ step, loss, lr, tokens_per_s: tokensPerS });
      if (step % config.eval_steps === 0 || step === config.steps) {
        after = await heldOutLoss();
        log.write({ event: 'eval', step, eval_loss: after, perplexity: Math.exp(after) });
        progress?.log(`step ${step}: held-out loss ${after.toFixed(4)}`);
      }
    }
  } finally {
    progress?.stop();
  }
  log.write({ event: 'end', step: config.steps, reason: 'completed', metrics: { perplexity_before: Math.exp(before), perplexity_after: Math.exp(after) } });
  log.close();
  writeReport(reportPath, logPath, { title: 'peft-native demo: stories260K on an Aesop fable' });
  out.write(`after:  held-out perplexity ${Math.exp(after).toFixed(2)}\n`);
  out.write(`after:  ${JSON.stringify(await sample())}\n`);
  printSummary(summarizeRun(readRunLog(logPath)), out, { 'run log': logPath, report: reportPath });
}

export const demoCommand: CommandSpec<typeof DEMO_SCHEMA> = defineCommand({
  name: 'demo',
  summary: 'fine-tune stories260K on a fable in seconds and show before/after perplexity and samples',
  description:
    'A small real fine-tune: stories260K (260K parameters) learns an Aesop fable it never saw. Prints the held-out perplexity and a sample\n' +
    'before and after, and writes run.jsonl and report.html to --output-dir.',
  schema: DEMO_SCHEMA,
  examples: ['peft-native demo', 'peft-native demo --steps 80 --output-dir /tmp/demo'],
  run: runDemo,
});
