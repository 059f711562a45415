/** `peft-native train`: fine-tune a model with a PEFT method on JSONL data. */
import * as path from 'node:path';

import { PeftError } from '../../errors';
import { printSummary } from '../../train/progress';
import { readRunLog } from '../../train/run-log';
import { summarizeRun } from '../../train/run-summary';
import { LOSS_SPIKE_POLICIES, NAN_POLICIES, type LossSpikePolicy, type NanPolicy } from '../../train/health';
import { SCHEDULE_TYPES } from '../../train/schedule';
import { defineCommand, type CommandSpec } from '../command';
import type { ConfigOf } from '../config';
import { MODEL_FIELD, TOKENIZER_FIELD } from '../fields';

export const TRAIN_SCHEMA = {
  model: MODEL_FIELD,
  tokenizer: TOKENIZER_FIELD,
  train_file: { type: 'string', description: 'training data, JSONL', required: true, placeholder: 'file' },
  valid_file: { type: 'string', description: 'validation data, JSONL', placeholder: 'file' },
  test_file: { type: 'string', description: 'test data, JSONL, evaluated once at the end', placeholder: 'file' },
  valid_split: { type: 'number', description: 'without valid_file: the fraction of train_file held out for validation', default: 0, min: 0, max: 0.5 },
  output_dir: { type: 'string', description: 'where the adapter, checkpoints, run.jsonl and report.html go', default: 'peft-output', short: 'o', placeholder: 'dir' },
  max_seq_length: { type: 'integer', description: 'longer examples are truncated', default: 512, min: 1 },
  packing: { type: 'boolean', description: 'pack short examples together into full-length sequences', default: false },
  batch_size: { type: 'integer', description: 'sequences per step', default: 4, min: 1 },
  gradient_accumulation_steps: { type: 'integer', description: 'batches summed before each optimizer step', default: 1, min: 1 },
  max_steps: { type: 'integer', description: 'optimizer steps; overrides num_train_epochs', min: 1 },
  num_train_epochs: { type: 'number', description: 'passes over the training data', default: 1, min: 0, exclusiveMin: true },
  learning_rate: { type: 'number', description: 'peak learning rate', default: 2e-4, min: 0, exclusiveMin: true },
  lr_scheduler_type: { type: 'string', description: 'learning-rate schedule after warmup', default: 'linear', choices: SCHEDULE_TYPES },
  warmup_steps: { type: 'integer', description: 'linear warmup steps (wins over warmup_ratio)', default: 0, min: 0 },
  warmup_ratio: { type: 'number', description: 'linear warmup as a fraction of all steps', default: 0, min: 0, max: 1 },
  optimizer: { type: 'string', description: 'the optimizer', default: 'adamw', choices: ['adamw', 'sgd'] },
  weight_decay: { type: 'number', description: 'decoupled weight decay', default: 0, min: 0 },
  adam_beta1: { type: 'number', description: 'AdamW beta1', default: 0.9, min: 0, max: 1 },
  adam_beta2: { type: 'number', description: 'AdamW beta2', default: 0.999, min: 0, max: 1 },
  adam_epsilon: { type: 'number', description: 'AdamW epsilon', default: 1e-8, min: 0, exclusiveMin: true },
  max_grad_norm: { type: 'number', description: 'clip the gradient norm to this (0: no clipping)', default: 1, min: 0 },
  loraplus_lr_ratio: { type: 'number', description: 'LoRA+: learning rate of B over that of A (e.g. 16)', min: 0, exclusiveMin: true },
  eval_steps: { type: 'integer', description: 'evaluate every this many steps', default: 50, min: 1 },
  save_steps: { type: 'integer', description: 'write a checkpoint every this many steps', default: 100, min: 1 },
  logging_steps: { type: 'integer', description: 'log the loss every this many steps', default: 1, min: 1 },
  early_stopping_patience: { type: 'integer', description: 'stop after this many evaluations without improvement; the best checkpoint is kept', min: 1 },
  save_total_limit: { type: 'integer', description: 'keep at most this many checkpoints (the best one is always kept)', min: 1 },
  resume_from_checkpoint: { type: 'string', description: "continue a run from its checkpoint directory ('latest': the newest in output_dir)", placeholder: 'dir' },
  overwrite_output_dir: { type: 'boolean', description: "start afresh in an output_dir that holds another run's checkpoints (they are deleted)", default: false },
  gradient_checkpointing: { type: 'boolean', description: 'recompute block activations in the backward pass to save memory', default: false },
  nan_policy: { type: 'string', description: "a step whose loss or gradient is NaN or infinite: 'stop' the run, or 'skip' its update", default: 'stop', choices: NAN_POLICIES },
  max_consecutive_nan_steps: { type: 'integer', description: "with --nan-policy skip: stop when this many steps in a row were skipped", default: 5, min: 1 },
  loss_spike_policy: { type: 'string', description: "a loss far above the recent ones: 'warn', 'stop' before its update, or 'ignore'", default: 'warn', choices: LOSS_SPIKE_POLICIES },
  loss_spike_threshold: { type: 'number', description: 'a loss spike lies this many standard deviations above the mean of recent losses', default: 4, min: 0, exclusiveMin: true },
  seed: { type: 'integer', description: 'seed for initialization, data order and dropout', default: 42 },
  progress: { type: 'boolean', description: 'show a live progress bar (plain lines when not a terminal)', default: true, offDescription: 'no progress display' },
  peft: {
    description: 'the PEFT method, with Hugging Face PEFT field names',
    fields: {
      peft_type: { type: 'string', description: 'the method', default: 'LORA', choices: ['LORA', 'IA3', 'PROMPT_TUNING', 'PREFIX_TUNING', 'P_TUNING'] },
      r: { type: 'integer', description: 'LoRA rank', default: 8, min: 1 },
      lora_alpha: { type: 'number', description: 'LoRA scaling numerator (scale = lora_alpha / r)', default: 16 },
      lora_dropout: { type: 'number', description: 'dropout on the LoRA input', default: 0, min: 0, max: 1 },
      target_modules: { type: 'string[]', description: 'module names to adapt', default: ['q_proj', 'v_proj'] },
      use_rslora: { type: 'boolean', description: 'rank-stabilized scaling lora_alpha / sqrt(r)', default: false },
      use_dora: { type: 'boolean', description: 'DoRA: weight-decomposed LoRA', default: false },
      num_virtual_tokens: { type: 'integer', description: 'prompt / prefix tuning: virtual tokens', default: 20, min: 1 },
    },
  },
} as const;

/** The resolved configuration of `peft-native train`. */
export type TrainConfig = ConfigOf<typeof TRAIN_SCHEMA>;

/** The PEFT config of the chosen method, from the peft group (fields of other methods left out). */
export function peftConfigOf(p: TrainConfig['peft']): Record<string, unknown> {
  switch (p.peft_type) {
    case 'LORA':
      return { peft_type: 'LORA', r: p.r, lora_alpha: p.lora_alpha, lora_dropout: p.lora_dropout, target_modules: p.target_modules, use_rslora: p.use_rslora, use_dora: p.use_dora };
    case 'IA3':
      return { peft_type: 'IA3', target_modules: p.target_modules, feedforward_modules: p.target_modules.filter((m) => /(down|up|gate)_proj|mlp/.test(m)) };
    default:
      return { peft_type: p.peft_type, num_virtual_tokens: p.num_virtual_tokens };
  }
}

/** Runs a training run from a resolved configuration. */
export async function runTrain(config: TrainConfig): Promise<void> {
  const out = process.stdout;
  // Loaded here, not at the top: --help should not need the native addon.
  const { loadModel } = await import('../../models/model');
  const { getPeftModel } = await import('../../peft/peft-model');
  const { loadDatasets } = await import('../../data/load');
  const { Trainer } = await import('../../train/trainer');
  const model = await loadModel(config.model, { tokenizer: config.tokenizer });
  const tokenizer = model.tokenizer;
  if (!tokenizer) throw new PeftError(`${config.model} has no tokenizer; give --tokenizer <dir with tokenizer.json>`, 'E_CONFIG');
  const context = model.config.maxPositionEmbeddings;
  const maxSeqLength = Math.min(config.max_seq_length, context);
  if (maxSeqLength < config.max_seq_length) out.write(`max_seq_length ${config.max_seq_length} is beyond the model's context: using ${context}\n`);
  const dataOptions = { maxSeqLength, packing: config.packing };
  const sets =
    config.valid_file === undefined && config.valid_split > 0
      ? await loadDatasets({ data: config.train_file, validFraction: config.valid_split, seed: config.seed }, tokenizer, dataOptions)
      : await loadDatasets({ train: config.train_file, valid: config.valid_file, test: config.test_file }, tokenizer, dataOptions);
  const test = config.valid_file === undefined && config.valid_split > 0 && config.test_file !== undefined
    ? (await loadDatasets({ train: config.test_file }, tokenizer, dataOptions)).train
    : sets.test;
  const peft = getPeftModel(model, peftConfigOf(config.peft), { seed: config.seed, warn: (m) => process.stderr.write(`warning: ${m}\n`) });
  out.write(`model: ${config.model}\n`);
  peft.printTrainableParameters((line) => out.write(`${line}\n`));
  const t = sets.train.stats();
  out.write(`training data: ${t.examples} sequences, ${t.tokens} tokens (${t.format}${t.truncated ? `, ${t.truncated} truncated` : ''}${t.dropped ? `, ${t.dropped} dropped` : ''})\n`);
  if (sets.valid) out.write(`validation data: ${sets.valid.length} sequences, ${sets.valid.stats().tokens} tokens\n`);

  // Ctrl-C stops after the current step (the adapter is still saved); a second one exits at once.
  const controller = new AbortController();
  const onSigint = () => {
    process.stderr.write('\nstopping after this step (Ctrl-C again to quit now)\n');
    controller.abort();
    process.removeListener('SIGINT', onSigint);
  };
  process.on('SIGINT', onSigint);
  const trainer = new Trainer(peft, {
    train_dataset: sets.train,
    eval_dataset: sets.valid,
    output_dir: config.output_dir,
    overwrite_output_dir: config.overwrite_output_dir,
    optimizer: config.optimizer as 'adamw' | 'sgd',
    learning_rate: config.learning_rate,
    weight_decay: config.weight_decay,
    adam_beta1: config.adam_beta1,
    adam_beta2: config.adam_beta2,
    adam_epsilon: config.adam_epsilon,
    loraplus_lr_ratio: config.loraplus_lr_ratio,
    lr_scheduler_type: config.lr_scheduler_type as 'constant' | 'linear' | 'cosine',
    warmup_steps: config.warmup_steps,
    warmup_ratio: config.warmup_ratio,
    per_device_train_batch_size: config.batch_size,
    gradient_accumulation_steps: config.gradient_accumulation_steps,
    max_grad_norm: config.max_grad_norm,
    max_steps: config.max_steps,
    num_train_epochs: config.num_train_epochs,
    eval_steps: sets.valid ? config.eval_steps : undefined,
    early_stopping_patience: config.early_stopping_patience,
    save_steps: config.save_steps,
    save_total_limit: config.save_total_limit,
    logging_steps: config.logging_steps,
    gradient_checkpointing: config.gradient_checkpointing,
    nan_policy: config.nan_policy as NanPolicy,
    max_consecutive_nan_steps: config.max_consecutive_nan_steps,
    loss_spike_policy: config.loss_spike_policy as LossSpikePolicy,
    loss_spike_threshold: config.loss_spike_threshold,
    seed: config.seed,
    progress: config.progress ? process.stdout : false,
    signal: controller.signal,
    warn: (m) => process.stderr.write(`warning: ${m}\n`),
  });
  let result;
  try {
    const resume = config.resume_from_checkpoint;
    result = await trainer.train({ resumeFrom: resume === 'latest' ? true : resume });
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  const adapterDir = path.join(config.output_dir, 'adapter');
  await peft.saveAdapter(adapterDir);
  const outputs: Record<string, string> = { adapter: adapterDir, 'run log': result.run_log!, report: result.report! };
  if (result.best?.checkpoint) outputs['best checkpoint'] = result.best.checkpoint;
  printSummary(summarizeRun(readRunLog(result.run_log!)), out, outputs);
  if (test) {
    const r = await trainer.evaluate(test);
    out.write(`test loss ${r.eval_loss.toFixed(4)} (perplexity ${r.perplexity.toFixed(3)}) on ${test.length} sequences\n`);
  }
}

export const trainCommand: CommandSpec<typeof TRAIN_SCHEMA> = defineCommand({
  name: 'train',
  summary: 'fine-tune a model with LoRA (or another PEFT method) on JSONL data',
  description:
    'Fine-tunes a model with a PEFT method on JSONL data ({"text"}, {"prompt","completion"}, chat {"messages"}, ...).\n' +
    'Writes the adapter, checkpoints, a JSON-lines log (run.jsonl) and report.html to --output-dir.',
  schema: TRAIN_SCHEMA,
  examples: [
    'peft-native train --model ./stories260K-hf --train-file train.jsonl --valid-file valid.jsonl --max-steps 200',
    'peft-native train --config lora.yaml --learning-rate 1e-4 --set peft.r=16',
  ],
  run: runTrain,
});
