/**
 * `peft-native demo` (also `npm run demo`): a small real fine-tune, end to end. Loads stories260K
 * (a 260K-parameter Llama trained on TinyStories), measures its perplexity on a held-out sentence of
 * a fable it never saw, fine-tunes LoRA adapters on the other sentences with the Trainer, and
 * measures again; saves the adapter and writes the run log and report.html.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../../errors';
import type { Model } from '../../models/model';
import type { PeftModel } from '../../peft/peft-model';
import { printSummary } from '../../train/progress';
import { readRunLog } from '../../train/run-log';
import { summarizeRun } from '../../train/run-summary';
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
  output_dir: { type: 'string', description: 'where the adapter, run.jsonl and report.html go', default: 'peft-demo', short: 'o', placeholder: 'dir' },
  steps: { type: 'integer', description: 'optimizer steps', default: 40, min: 1 },
  learning_rate: { type: 'number', description: 'AdamW learning rate of the LoRA weights', default: 1e-3, min: 0, exclusiveMin: true },
  eval_steps: { type: 'integer', description: 'measure the held-out loss every this many steps', default: 10, min: 1 },
  progress: { type: 'boolean', description: 'show progress while training', default: true, offDescription: 'no progress display' },
} as const;

/** The resolved configuration of `peft-native demo`. */
export type DemoConfig = ConfigOf<typeof DEMO_SCHEMA>;

/** The package root, from lib/cli/commands or dist/cli/commands. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

/** The LoRA adapter the demo trains: every linear layer, rank 8. */
const DEMO_LORA = { peft_type: 'LORA', r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: 'all-linear' } as const;

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
  const { getPeftModel } = await import('../../peft/peft-model');
  const { loadDatasets } = await import('../../data/load');
  const { Trainer } = await import('../../train/trainer');
  const { model, where } = await demoModel(config.model);
  const tok = model.tokenizer;
  if (!tok) throw new PeftError(`${where} has no tokenizer`, 'E_CONFIG');
  const lines = FABLE.split('\n');
  const heldOut = lines.splice(5, 1)[0]; // one sentence of the story is never trained on
  const data = await loadDatasets({ train: lines.map((text) => ({ text })), valid: [{ text: heldOut }] }, tok, { maxSeqLength: 128 });
  const peft: PeftModel = getPeftModel(model, DEMO_LORA, { seed: 1 });
  const sample = async () => {
    peft.eval();
    return (await peft.generate('The tortoise', { maxNewTokens: 24 })).text;
  };
  const { trainable, all } = peft.getNbTrainableParameters();
  out.write(`model: ${where}\n`);
  out.write(`LoRA r=${DEMO_LORA.r} on every linear layer: ${trainable.toLocaleString('en-US')} trainable parameters of ${all.toLocaleString('en-US')}\n`);
  out.write(`training text: ${data.train.length} sentences, ${data.train.stats().tokens} tokens; held-out: ${data.valid!.stats().tokens} tokens\n`);
  const trainer = new Trainer(peft, {
    train_dataset: data.train,
    eval_dataset: data.valid,
    output_dir: config.output_dir,
    overwrite_output_dir: true, // each demo is a fresh run
    learning_rate: config.learning_rate,
    lr_scheduler_type: 'constant',
    per_device_train_batch_size: 2,
    max_steps: config.steps,
    eval_steps: config.eval_steps,
    eval_on_start: true,
    load_best_model_at_end: true, // the adapter saved is the one with the lowest held-out loss
    save_total_limit: 1,
    seed: 1,
    progress: config.progress ? process.stdout : false,
    callbacks: {
      onEval: async ({ step, perplexity }) => {
        if (step !== 0) return;
        out.write(`before: held-out perplexity ${perplexity.toFixed(2)}\n`);
        out.write(`before: ${JSON.stringify(await sample())}\n`);
      },
    },
  });
  const result = await trainer.train();
  const after = await trainer.evaluate(); // with the best weights, which the trainer put back
  out.write(`after:  held-out perplexity ${after.perplexity.toFixed(2)} (the best evaluation, step ${result.best!.step})\n`);
  out.write(`after:  ${JSON.stringify(await sample())}\n`);
  const adapterDir = path.join(config.output_dir, 'adapter');
  await peft.saveAdapter(adapterDir);
  printSummary(summarizeRun(readRunLog(result.run_log!)), out, { adapter: adapterDir, 'run log': result.run_log!, report: result.report! });
  out.write(`try it: npx peft-native generate --model ${where} --adapter ${adapterDir} --prompt "The tortoise"\n`);
}

export const demoCommand: CommandSpec<typeof DEMO_SCHEMA> = defineCommand({
  name: 'demo',
  summary: 'fine-tune LoRA on stories260K with a fable in seconds and show before/after perplexity and samples',
  description:
    'A small real fine-tune: LoRA adapters on stories260K (260K parameters) learn an Aesop fable it never saw. Prints the held-out\n' +
    'perplexity and a sample before and after, and writes the adapter, run.jsonl and report.html to --output-dir.',
  schema: DEMO_SCHEMA,
  examples: ['peft-native demo', 'peft-native demo --steps 80 --output-dir /tmp/demo'],
  run: runDemo,
});
